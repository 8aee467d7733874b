"""The API's OpenAPI document and the api package's layering.

Every operation documents what it answers (a named schema, or the events of its stream) and
its errors as ``ErrorBody``; routes reach nothing behind the service, and the service speaks
no HTTP. The live fuzz test (``test_api_fuzz``) checks real answers against this document.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any, get_args

import pytest

from ssechat.api import openapi
from ssechat.api.schemas import ChatMessageIn, Message, MessageStatus, RunState
from ssechat.providers.base import Role
from ssechat.runs import RunStatus
from ssechat.store import MESSAGE_STATUSES, ROLES

API = Path(openapi.__file__).parent
ERROR_BODY = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}

# What each operation answers when it succeeds: status -> media type -> named schema (or, for
# an event stream, the event types it documents).
RUN_EVENTS = [
    "run",
    "reasoning",
    "delta",
    "tool_call",
    "tool_decision",
    "tool_result",
    "error",
    "done",
]

ANSWERS: dict[tuple[str, str], dict[str, dict[str, Any]]] = {
    ("get", "/api/health"): {"200": {"application/json": "Health"}},
    ("get", "/api/models"): {"200": {"application/json": "ModelList"}},
    ("get", "/api/chat"): {"200": {"text/event-stream": ["message", "reasoning", "error"]}},
    ("post", "/api/chat"): {"200": {"text/event-stream": ["message", "reasoning", "error"]}},
    ("post", "/api/conversations"): {"201": {"application/json": "Conversation"}},
    ("get", "/api/conversations"): {"200": {"application/json": "ConversationPage"}},
    ("get", "/api/search"): {"200": {"application/json": "SearchPage"}},
    ("get", "/api/conversations/{conversation_id}"): {
        "200": {"application/json": "ConversationDetail"}
    },
    ("patch", "/api/conversations/{conversation_id}"): {
        "200": {"application/json": "ConversationDetail"}
    },
    ("delete", "/api/conversations/{conversation_id}"): {"204": {}},
    ("get", "/api/conversations/{conversation_id}/export"): {
        "200": {"application/json": "ExportDocument", "text/markdown": "string"}
    },
    ("get", "/api/export"): {"200": {"application/json": "ExportDocument"}},
    ("post", "/api/import"): {"200": {"application/json": "ImportResult"}},
    ("post", "/api/conversations/{conversation_id}/messages"): {
        "202": {"application/json": "GenerationAccepted"},
        "200": {"text/event-stream": RUN_EVENTS},
    },
    ("post", "/api/messages/{message_id}/regenerate"): {
        "202": {"application/json": "GenerationAccepted"},
        "200": {"text/event-stream": RUN_EVENTS},
    },
    ("get", "/api/runs/{run_id}"): {"200": {"application/json": "RunState"}},
    ("get", "/api/runs/{run_id}/events"): {"200": {"text/event-stream": RUN_EVENTS}},
    ("post", "/api/runs/{run_id}/cancel"): {"200": {"application/json": "RunState"}},
    ("get", "/api/auth/status"): {"200": {"application/json": "AuthStatus"}},
    ("post", "/api/auth/setup"): {"201": {"application/json": "Me"}},
    ("post", "/api/auth/signup"): {"201": {"application/json": "SignupResult"}},
    ("post", "/api/auth/login"): {"200": {"application/json": "Me"}},
    ("post", "/api/auth/logout"): {"204": {}},
    ("get", "/api/auth/me"): {"200": {"application/json": "Me"}},
    ("post", "/api/auth/password"): {"204": {}},
    ("get", "/api/keys"): {"200": {"application/json": "ApiKeyList"}},
    ("post", "/api/keys"): {"201": {"application/json": "ApiKeyCreated"}},
    ("delete", "/api/keys/{key_id}"): {"204": {}},
    ("get", "/api/admin/users"): {"200": {"application/json": "UserList"}},
    ("post", "/api/admin/users"): {"201": {"application/json": "UserInfo"}},
    ("patch", "/api/admin/users/{user_id}"): {"200": {"application/json": "UserInfo"}},
    ("delete", "/api/admin/users/{user_id}"): {"204": {}},
    ("get", "/api/tools"): {"200": {"application/json": "ToolList"}},
    ("post", "/api/runs/{run_id}/tool_calls/{call_id}/approve"): {
        "200": {"application/json": "ToolDecision"}
    },
    ("post", "/api/runs/{run_id}/tool_calls/{call_id}/deny"): {
        "200": {"application/json": "ToolDecision"}
    },
    ("get", "/api/admin/mcp"): {"200": {"application/json": "McpServerList"}},
    ("post", "/api/admin/mcp"): {"201": {"application/json": "McpServer"}},
    ("patch", "/api/admin/mcp/{name}"): {"200": {"application/json": "McpServer"}},
    ("delete", "/api/admin/mcp/{name}"): {"204": {}},
}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return openapi.document()


def operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method, path): operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
    }


def test_every_operation_documents_the_schema_of_what_it_answers(
    document: dict[str, Any],
) -> None:
    found = operations(document)
    assert set(found) == set(ANSWERS)
    for key, operation in found.items():
        successes = {s: r for s, r in operation["responses"].items() if s.startswith("2")}
        assert set(successes) == set(ANSWERS[key]), key
        for status, response in successes.items():
            content = response.get("content", {})
            assert set(content) == set(ANSWERS[key][status]), (key, status)
            for media_type, expected in ANSWERS[key][status].items():
                schema = content[media_type]["schema"]
                if media_type == "application/json":
                    assert schema == {"$ref": f"#/components/schemas/{expected}"}, key
                elif media_type == "text/markdown":  # an export as Markdown: plain text
                    assert schema == {"type": expected}, key
                else:  # one event of the stream, as OpenAPI 3.1 tools (schemathesis) read it
                    assert schema["properties"]["event"]["enum"] == expected, key
                    assert {"event", "data"} <= set(schema["required"]), key


def test_every_error_status_is_documented_as_the_error_body(document: dict[str, Any]) -> None:
    for key, operation in operations(document).items():
        errors = {s: r for s, r in operation["responses"].items() if s.startswith(("4", "5"))}
        takes_input = bool(operation.get("parameters") or operation.get("requestBody"))
        # Validation answers 422 with our error body, never FastAPI's HTTPValidationError.
        assert ("422" in errors) == takes_input, key
        for status, response in errors.items():
            assert response["content"] == ERROR_BODY, (key, status)
            assert response["description"], (key, status)
    error = document["components"]["schemas"]["ErrorBody"]
    assert error["required"] == ["error"]
    detail = document["components"]["schemas"]["ErrorDetail"]
    assert sorted(detail["required"]) == ["code", "message"]


def test_every_reference_resolves_and_no_unused_framework_schema_remains(
    document: dict[str, Any],
) -> None:
    schemas = document["components"]["schemas"]
    referenced = set(re.findall(r'"#/components/schemas/([^"]+)"', json.dumps(document)))
    assert referenced <= set(schemas)
    assert "HTTPValidationError" not in schemas
    # Response bodies send every field and nothing else, so the UI's types can rely on them.
    for name in ("Conversation", "ConversationDetail", "Message", "RunState", "Health"):
        assert schemas[name]["additionalProperties"] is False, name
        assert set(schemas[name]["required"]) == set(schemas[name]["properties"]), name


def test_the_module_prints_the_document(capsys: pytest.CaptureFixture[str]) -> None:
    assert openapi.main([]) == 0
    assert json.loads(capsys.readouterr().out) == openapi.document()


def test_shared_names_are_the_ones_their_owners_define() -> None:
    assert get_args(MessageStatus) == MESSAGE_STATUSES
    assert get_args(Role) == ROLES
    assert Message.model_fields["role"].annotation == Role
    assert ChatMessageIn.model_fields["role"].annotation == Role
    assert RunState.model_fields["status"].annotation == RunStatus


# --- layering ------------------------------------------------------------------------------

BEHIND_THE_SERVICE = {"store", "runs", "providers"}
FORBIDDEN_IMPORTS = ("ssechat.store", "ssechat.runs", "ssechat.providers.registry")


def reaches_past_the_service(source: str) -> list[str]:
    """Where ``source`` touches what only the service may: its store, runs or providers
    (any ``.store``/``.runs``/``.providers`` attribute), or imports them."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in BEHIND_THE_SERVICE:
            found.append(f"line {node.lineno}: .{node.attr}")
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            if name.startswith(FORBIDDEN_IMPORTS):
                found.append(f"line {node.lineno}: import {name}")
    return found


def test_the_layering_check_sees_a_route_reaching_past_the_service() -> None:
    assert reaches_past_the_service("async def r(s):\n    return await s.store.get('x')\n")
    assert reaches_past_the_service("def r(s):\n    return s.runs.get('x').as_dict()\n")
    assert reaches_past_the_service("async def r(s):\n    return await s.providers.models()\n")
    assert reaches_past_the_service("from ssechat.runs.manager import Run\n")
    assert reaches_past_the_service("import ssechat.store\n")
    assert not reaches_past_the_service("async def r(s):\n    return await s.conversation('x')\n")


# The service, and what it is made of (shared.py: Redis and the cluster for several processes).
SERVICE_MODULES = (
    "service.py",
    "shared.py",
    "tool_service.py",
    "oneshot.py",
    "transfer_service.py",
    "search_service.py",
)
ROUTE_MODULES = sorted(
    p.name for p in API.glob("*.py") if p.name not in (*SERVICE_MODULES, "schemas.py")
)


def test_the_route_modules_are_all_checked() -> None:
    assert {"chat.py", "conversations.py", "runs.py", "deps.py", "__init__.py"} <= set(
        ROUTE_MODULES
    )


@pytest.mark.parametrize("module", ROUTE_MODULES)
def test_routes_reach_nothing_behind_the_service(module: str) -> None:
    assert reaches_past_the_service((API / module).read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("module", SERVICE_MODULES)
def test_the_service_speaks_no_http(module: str) -> None:
    tree = ast.parse((API / module).read_text(encoding="utf-8"))
    imported = [
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    ]
    http = ("fastapi", "starlette", "ssechat.responses", "ssechat.api.deps", "httpx")
    assert [name for name in imported if name and name.startswith(http)] == []
