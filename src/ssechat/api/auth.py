"""Routes for signing in and out, first-run setup, sign-up, the password, and API keys.

The session cookie holds an opaque random token (the server keeps only its hash): ``HttpOnly``,
``SameSite=Lax``, ``Path=/``, and ``Secure`` when the request came over HTTPS. Its lifetime is
the session's absolute one; the idle one is the server's to enforce. These routes, like every
other, are same-origin only for changes (``api.guard``).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from ssechat.api.account_schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyList,
    AuthStatus,
    LoginRequest,
    Me,
    PasswordChange,
    SetupRequest,
    SignupRequest,
    SignupResult,
)
from ssechat.api.deps import SESSION_COOKIE, Accounts, CurrentUser
from ssechat.api.errors import error_responses
from ssechat.auth import SignedIn

__all__ = ["router"]

router = APIRouter(prefix="/api", tags=["accounts"])


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _signed_in(request: Request, signed_in: SignedIn, status_code: int) -> Response:
    response = Response(
        Me.model_validate(signed_in.principal.as_me()).model_dump_json(),
        status_code=status_code,
        media_type="application/json",
    )
    response.set_cookie(
        SESSION_COOKIE,
        signed_in.token,
        max_age=signed_in.max_age,
        path="/",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    return response


@router.get("/auth/status")
async def auth_status(accounts: Accounts) -> AuthStatus:
    return AuthStatus.model_validate(await accounts.status())


@router.post(
    "/auth/setup",
    status_code=201,
    response_model=Me,
    responses=error_responses(400, 401, 403, 404, 422, 429),
)
async def setup(body: SetupRequest, request: Request, accounts: Accounts) -> Response:
    signed_in = await accounts.setup(
        body.token,
        email=body.email,
        password=body.password,
        name=body.name,
        address=_address(request),
    )
    return _signed_in(request, signed_in, 201)


@router.post(
    "/auth/signup", status_code=201, responses=error_responses(400, 401, 403, 404, 409, 422)
)
async def signup(body: SignupRequest, accounts: Accounts) -> SignupResult:
    status = await accounts.signup(email=body.email, password=body.password, name=body.name)
    return SignupResult.model_validate({"status": status})


@router.post(
    "/auth/login", response_model=Me, responses=error_responses(400, 401, 403, 404, 422, 429)
)
async def login(body: LoginRequest, request: Request, accounts: Accounts) -> Response:
    signed_in = await accounts.login(body.email, body.password, address=_address(request))
    return _signed_in(request, signed_in, 200)


@router.post("/auth/logout", status_code=204, responses=error_responses(401, 403))
async def logout(request: Request, accounts: Accounts, user: CurrentUser) -> Response:
    await accounts.logout(user)
    response = Response(status_code=204)
    response.delete_cookie(
        SESSION_COOKIE,
        path="/",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    return response


@router.get("/auth/me", responses=error_responses(401))
async def me(user: CurrentUser) -> Me:
    return Me.model_validate(user.as_me())


@router.post(
    "/auth/password", status_code=204, responses=error_responses(400, 401, 403, 404, 422, 429)
)
async def change_password(
    body: PasswordChange, request: Request, accounts: Accounts, user: CurrentUser
) -> Response:
    await accounts.change_password(
        user, body.current_password, body.new_password, address=_address(request)
    )
    return Response(status_code=204)


@router.get("/keys", responses=error_responses(401, 404))
async def list_keys(accounts: Accounts, user: CurrentUser) -> ApiKeyList:
    return ApiKeyList.model_validate({"keys": await accounts.list_keys(user)})


@router.post("/keys", status_code=201, responses=error_responses(400, 401, 403, 404, 422))
async def create_key(body: ApiKeyCreate, accounts: Accounts, user: CurrentUser) -> ApiKeyCreated:
    return ApiKeyCreated.model_validate(await accounts.create_key(user, body.name))


@router.delete("/keys/{key_id}", status_code=204, responses=error_responses(401, 403, 404, 422))
async def revoke_key(key_id: str, accounts: Accounts, user: CurrentUser) -> Response:
    await accounts.revoke_key(user, key_id)
    return Response(status_code=204)
