"""Routes for tools: the tools a user may give a conversation, Approve and Deny of a run's tool
call, and the admins' MCP servers (list, add, turn on and off, set approvals, edit, remove).

Every route needs credentials; the MCP routes need an admin (403 otherwise). Like every route,
they call the service (``ChatService.tools``), nothing else.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from ssechat.api.deps import CurrentUser, Service
from ssechat.api.errors import error_responses
from ssechat.api.tool_schemas import (
    McpServer,
    McpServerCreate,
    McpServerList,
    McpServerPatch,
    ToolDecision,
    ToolList,
)

__all__ = ["router"]

router = APIRouter(prefix="/api", tags=["tools"], responses=error_responses(401, 403))


@router.get("/tools")
async def list_tools(service: Service, user: CurrentUser) -> ToolList:
    return service.tools.tool_list()


@router.post(
    "/runs/{run_id}/tool_calls/{call_id}/approve", responses=error_responses(404, 409, 422, 503)
)
async def approve_tool_call(
    run_id: str, call_id: str, service: Service, user: CurrentUser
) -> ToolDecision:
    """Let a call waiting for a decision run (on whichever process holds the run)."""
    return await service.decide_tool_call(run_id, call_id, approve=True, owner=user.id)


@router.post(
    "/runs/{run_id}/tool_calls/{call_id}/deny", responses=error_responses(404, 409, 422, 503)
)
async def deny_tool_call(
    run_id: str, call_id: str, service: Service, user: CurrentUser
) -> ToolDecision:
    """Refuse a call waiting for a decision: the model is told so, and the answer goes on."""
    return await service.decide_tool_call(run_id, call_id, approve=False, owner=user.id)


@router.get("/admin/mcp", tags=["admin"])
async def list_mcp_servers(service: Service, user: CurrentUser) -> McpServerList:
    return await service.tools.servers_list(user)


@router.post(
    "/admin/mcp", status_code=201, tags=["admin"], responses=error_responses(400, 409, 422)
)
async def add_mcp_server(body: McpServerCreate, service: Service, user: CurrentUser) -> McpServer:
    return await service.tools.add_server(user, body.name, body.config)


@router.patch("/admin/mcp/{name}", tags=["admin"], responses=error_responses(400, 404, 409, 422))
async def update_mcp_server(
    name: str, body: McpServerPatch, service: Service, user: CurrentUser
) -> McpServer:
    return await service.tools.update_server(
        user, name, enabled=body.enabled, approvals=body.approvals, config=body.config
    )


@router.delete(
    "/admin/mcp/{name}", status_code=204, tags=["admin"], responses=error_responses(404, 409, 422)
)
async def delete_mcp_server(name: str, service: Service, user: CurrentUser) -> Response:
    await service.tools.delete_server(user, name)
    return Response(status_code=204)
