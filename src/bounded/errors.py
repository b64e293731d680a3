"""The one error tree of bounded.

Every failure a client can see is one of these, rendered at the gateway edge as an
OpenAI-style body ``{"error": {"message", "type", "param", "code"}}`` with its status.

    BoundedError                      (500 api_error)
    ├── ClientError                   bad input: never retried, never a 500
    │   ├── InvalidRequest            400 invalid_request_error
    │   ├── Unauthenticated           401 authentication_error
    │   ├── PermissionDenied          403 permission_error
    │   ├── NotFound                  404 not_found_error
    │   ├── PayloadTooLarge           413 invalid_request_error
    │   ├── Unprocessable             422 invalid_request_error
    │   ├── ClientClosed              499 the client left before its request was read
    │   └── TooManyRequests           429 rate_limit_error (our own limits)
    ├── StoreUnavailable              503 a database bounded needs (an index) is unreachable
    └── ProviderError                 an upstream failed; the router decides on .retryable/.kind
        ├── RateLimited               429 upstream said slow down (honours retry_after)
        ├── Timeout                   504 attempt or deadline ran out
        ├── ContextTooLong            400 prompt does not fit the model
        ├── ContentRefused            400 the provider refused the content
        ├── Unavailable               502/503 5xx, connection reset, malformed reply
        └── BadRequest                400 the upstream rejected the request itself

Vendor and HTTP-client exceptions become these in exactly one place per provider.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar


class BoundedError(Exception):
    status: ClassVar[int] = 500
    type: ClassVar[str] = "api_error"
    default_code: ClassVar[str | None] = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code or self.default_code

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def headers(self) -> dict[str, str]:
        return {}


class ClientError(BoundedError):
    """The request itself is wrong; retrying or falling back cannot help."""


class InvalidRequest(ClientError):
    status = 400
    type = "invalid_request_error"
    default_code = "invalid_request"


class Unauthenticated(ClientError):
    status = 401
    type = "authentication_error"
    default_code = "invalid_api_key"


class PermissionDenied(ClientError):
    status = 403
    type = "permission_error"
    default_code = "feature_not_allowed"


class NotFound(ClientError):
    status = 404
    type = "not_found_error"
    default_code = "model_not_found"


class PayloadTooLarge(ClientError):
    status = 413
    type = "invalid_request_error"
    default_code = "request_too_large"


class Unprocessable(ClientError):
    status = 422
    type = "invalid_request_error"
    default_code = "validation_error"


class ClientClosed(ClientError):
    """The client hung up (or was cut off as too slow) before its body arrived; the
    response goes nowhere, but the request path ends cleanly."""

    status = 499
    type = "invalid_request_error"
    default_code = "client_closed_request"


class TooManyRequests(ClientError):
    status = 429
    type = "rate_limit_error"
    default_code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after: float | None = None, code: str | None = None):
        super().__init__(message, code=code)
        self.retry_after = retry_after
        self.extra_headers: dict[str, str] = {}

    def headers(self) -> dict[str, str]:
        if self.retry_after is None:
            return dict(self.extra_headers)
        return {**self.extra_headers, "retry-after": str(max(1, math.ceil(self.retry_after)))}


class StoreUnavailable(BoundedError):
    """A store bounded itself depends on is down; the request may succeed later."""

    status = 503
    default_code = "store_unavailable"


class ProviderError(BoundedError):
    """An upstream call failed. ``kind`` is the name fallback rules match on."""

    kind: ClassVar[str] = "unavailable"
    retryable_by_default: ClassVar[bool] = False
    status = 502
    type = "upstream_error"

    def __init__(
        self,
        message: str,
        *,
        deployment: str | None = None,
        upstream_status: int | None = None,
        code: str | None = None,
        retryable: bool | None = None,
    ):
        super().__init__(message, code=code or self.default_code or self.kind)
        self.deployment = deployment
        self.upstream_status = upstream_status
        # Whether trying the same deployment again can help. A provider may know better
        # than the class: a timeout of the one in-process model will not pass on a retry.
        self.retryable = self.retryable_by_default if retryable is None else retryable


class RateLimited(ProviderError):
    kind = "rate_limit"
    retryable_by_default = True
    status = 429
    type = "rate_limit_error"

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any):
        super().__init__(message, **kw)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        if self.retry_after is None:
            return {}
        return {"retry-after": str(max(1, round(self.retry_after)))}


class Timeout(ProviderError):
    kind = "timeout"
    retryable_by_default = True
    status = 504
    type = "timeout_error"


class Unavailable(ProviderError):
    kind = "unavailable"
    retryable_by_default = True
    status = 502


class ContextTooLong(ProviderError):
    kind = "context_too_long"
    status = 400
    type = "invalid_request_error"
    default_code = "context_length_exceeded"


class ContentRefused(ProviderError):
    kind = "content_refused"
    status = 400
    type = "invalid_request_error"


class BadRequest(ProviderError):
    kind = "bad_request"
    status = 400
    type = "invalid_request_error"


PROVIDER_ERROR_KINDS: dict[str, type[ProviderError]] = {
    cls.kind: cls
    for cls in (RateLimited, Timeout, Unavailable, ContextTooLong, ContentRefused, BadRequest)
}
