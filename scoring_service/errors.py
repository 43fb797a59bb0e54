"""The service's errors and their gRPC status codes, mapped in this one place.

Domain errors (``segmentation_core.errors``) keep their meaning: bad customer data is INVALID_ARGUMENT,
an unknown model or version NOT_FOUND. The service adds :class:`Unavailable` (no model loaded yet) and
:class:`Unauthenticated` (missing or wrong bearer token).
"""
from __future__ import annotations

from typing import NoReturn

import grpc

from segmentation_core.errors import InputError, NotFoundError, SegmentationError, bounded
from segmentation_core.rate_limit import RETRY_AFTER_KEY


class ServiceError(SegmentationError):
    """Base of the errors the service raises itself."""


class InvalidRequest(ServiceError, InputError):
    """A request that is malformed as a whole (not one customer's data)."""


class Unavailable(ServiceError):
    """No model version is loaded for the request yet; the caller may retry."""


class ResourceExhausted(ServiceError):
    """The server takes no more calls of this kind now (the long-lived call cap); the caller may retry later,
    after ``retry_after_ms`` (sent as the rate limiter's trailing ``retry-after-ms``, which the client honours)."""

    def __init__(self, message: str, retry_after_ms: int | None = None) -> None:
        super().__init__(message)
        self.retry_after_ms = retry_after_ms


class StreamIdle(ServiceError):
    """A PredictStream sent no request for --stream-idle-seconds; the server ended it."""


class Unauthenticated(ServiceError):
    """The call carries no valid bearer token."""


# Most specific first: the first match wins.
STATUS_CODES: tuple[tuple[type[BaseException], grpc.StatusCode], ...] = (
    (Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (Unavailable, grpc.StatusCode.UNAVAILABLE),
    (ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (StreamIdle, grpc.StatusCode.DEADLINE_EXCEEDED),
    (NotFoundError, grpc.StatusCode.NOT_FOUND),
    (InputError, grpc.StatusCode.INVALID_ARGUMENT),
)


def status_code(error: BaseException) -> grpc.StatusCode:
    """The gRPC status code of an error; INTERNAL for anything unexpected."""
    for kind, code in STATUS_CODES:
        if isinstance(error, kind):
            return code
    return grpc.StatusCode.INTERNAL


def abort(context: grpc.ServicerContext, error: BaseException) -> NoReturn:
    """End the call with the status of ``error`` and its message (which names the field and row)."""
    code = status_code(error)
    message = str(error) if code is not grpc.StatusCode.INTERNAL else f"internal error: {type(error).__name__}"
    if isinstance(error, ResourceExhausted) and error.retry_after_ms:
        context.set_trailing_metadata(((RETRY_AFTER_KEY, str(error.retry_after_ms)),))
    context.abort(code, bounded(message))  # never echo unbounded input (metadata has a size limit too)
    raise AssertionError("unreachable")  # context.abort raises
