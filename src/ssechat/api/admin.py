"""Routes for admins to manage accounts: list, create, approve, disable, enable, change the role
of, reset the password of, and delete them.

Admins manage accounts; they never read another user's conversations (no route here, or
anywhere, takes another user's id to read their data). A non-admin gets 403.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from ssechat.api.account_schemas import UserCreate, UserInfo, UserList, UserPatch
from ssechat.api.deps import Accounts, CurrentUser
from ssechat.api.errors import error_responses

__all__ = ["router"]

router = APIRouter(prefix="/api/admin", tags=["admin"], responses=error_responses(401, 403, 404))


@router.get("/users")
async def list_users(accounts: Accounts, user: CurrentUser) -> UserList:
    return UserList.model_validate({"users": await accounts.list_users(user)})


@router.post("/users", status_code=201, responses=error_responses(400, 409, 422))
async def create_user(body: UserCreate, accounts: Accounts, user: CurrentUser) -> UserInfo:
    created = await accounts.create_user(
        user, email=body.email, password=body.password, name=body.name, role=body.role
    )
    return UserInfo.model_validate(created)


@router.patch("/users/{user_id}", responses=error_responses(400, 409, 422))
async def update_user(
    user_id: str, body: UserPatch, accounts: Accounts, user: CurrentUser
) -> UserInfo:
    updated = await accounts.update_user(
        user, user_id, role=body.role, status=body.status, password=body.password
    )
    return UserInfo.model_validate(updated)


@router.delete("/users/{user_id}", status_code=204, responses=error_responses(409, 422))
async def delete_user(user_id: str, accounts: Accounts, user: CurrentUser) -> Response:
    await accounts.delete_user(user, user_id)
    return Response(status_code=204)
