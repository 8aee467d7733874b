"""Every error ssechat raises on purpose, in one tree.

    SSEChatError                      code              HTTP   retryable
    ├── InvalidRequestError           invalid_request    400
    │   └── PayloadTooLargeError      payload_too_large  413
    ├── UnauthenticatedError          unauthenticated    401    (no credentials, or not valid)
    ├── ForbiddenError                forbidden          403    (signed in, not allowed)
    ├── NotFoundError                 not_found          404    (also: another user's id)
    ├── ConflictError                 conflict           409
    ├── RateLimitedError              rate_limited       429    (Retry-After: retry_after)
    │   └── TooManyRunsError          too_many_runs      429
    ├── ServiceUnavailableError       unavailable        503    yes  (PostgreSQL or Redis down)
    └── ProviderError                 upstream_error     502    (varies)
        ├── ProviderConnectionError   upstream_unreachable 502  yes  (connect refused, reset)
        ├── ProviderTimeoutError      upstream_timeout   504    yes  (connect or idle timeout)
        ├── ProviderStatusError       upstream_status    502    408/409/429/5xx: yes
        │   └── ProviderAuthError     upstream_auth      502    no   (401/403: the key is wrong)
        └── ProviderStreamError       upstream_stream_error 502 no (error frame after 200,
                                                                 malformed or cut-off stream)

``api`` turns these into ``{"error": {"code", "message"}}`` answers; ``runs`` turns them into SSE
``error`` events ``{code, message, retryable}``. This module imports nothing of ssechat, and no
message may carry a provider key.
"""

from __future__ import annotations

__all__ = [
    "ConflictError",
    "ForbiddenError",
    "InvalidRequestError",
    "NotFoundError",
    "PayloadTooLargeError",
    "ProviderAuthError",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderStatusError",
    "ProviderStreamError",
    "ProviderTimeoutError",
    "RateLimitedError",
    "SSEChatError",
    "ServiceUnavailableError",
    "TooManyRunsError",
    "UnauthenticatedError",
    "error_data",
]


class SSEChatError(Exception):
    """Base of the tree; ``code`` is stable and machine-readable, the message is for people."""

    code = "error"
    status_code = 500
    retryable = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequestError(SSEChatError):
    code = "invalid_request"
    status_code = 400


class PayloadTooLargeError(InvalidRequestError):
    code = "payload_too_large"
    status_code = 413


class UnauthenticatedError(SSEChatError):
    """No credentials, or ones that are not (or no longer) valid: sign in, or use a valid key."""

    code = "unauthenticated"
    status_code = 401


class ForbiddenError(SSEChatError):
    """Signed in, but not allowed to do this (the role, a cross-site request, a closed sign-up)."""

    code = "forbidden"
    status_code = 403


class RateLimitedError(SSEChatError):
    """Too many attempts; ``retry_after`` is how many seconds until the next one may succeed."""

    code = "rate_limited"
    status_code = 429

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TooManyRunsError(RateLimitedError):
    code = "too_many_runs"


class NotFoundError(SSEChatError):
    code = "not_found"
    status_code = 404


class ConflictError(SSEChatError):
    code = "conflict"
    status_code = 409


class ServiceUnavailableError(SSEChatError):
    """A service ssechat depends on (the database, Redis) cannot be reached: try again shortly.
    The message names the service, never its address or credentials."""

    code = "unavailable"
    status_code = 503
    retryable = True


class ProviderError(SSEChatError):
    """The upstream model API failed; ``retryable`` says whether trying again may help."""

    code = "upstream_error"
    status_code = 502

    def __init__(self, message: str, *, retryable: bool | None = None) -> None:
        super().__init__(message)
        if retryable is not None:
            self.retryable = retryable


class ProviderConnectionError(ProviderError):
    code = "upstream_unreachable"
    retryable = True


class ProviderTimeoutError(ProviderError):
    code = "upstream_timeout"
    status_code = 504
    retryable = True


class ProviderStatusError(ProviderError):
    """The upstream answered with an HTTP error status before streaming anything."""

    code = "upstream_status"

    def __init__(self, message: str, *, status: int, retry_after: float | None = None) -> None:
        super().__init__(message, retryable=status in (408, 409, 429) or status >= 500)
        self.status = status
        self.retry_after = retry_after


class ProviderAuthError(ProviderStatusError):
    code = "upstream_auth"


class ProviderStreamError(ProviderError):
    """The stream itself carried an error frame, or broke off in a way that is not retried."""

    code = "upstream_stream_error"


def error_data(error: SSEChatError) -> dict[str, str | bool]:
    """What an SSE ``error`` event carries: ``{code, message, retryable}``.

    The one place that shape is written: a run's ``error`` event and ``/api/chat``'s both use it.
    """
    return {"code": error.code, "message": error.message, "retryable": error.retryable}
