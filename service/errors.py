"""The service's own exceptions. Library errors are translated into these at the boundary.

    ServiceError
    +-- InputError                  the client sent something we will not process (4xx)
    |   +-- UnsupportedMediaType    not an image, or a type we do not take        (415)
    |   +-- UndecodableImage        looks like an image but does not decode        (400)
    |   +-- PayloadTooLarge         over the byte, pixel or side limit             (413)
    |   +-- InvalidOptions          bad option values                              (422)
    |   +-- MissingImage            no image field and no raw image body           (422)
    |   +-- BodyTooSlow             the body arrived slower than the minimum rate  (408)
    |   +-- IdempotencyKeyReused    an Idempotency-Key already used for another body (422)
    +-- Unauthorized                missing or unknown API key                     (401)
    +-- RateLimited                 the key's request rate is over its limit       (429)
    +-- NotFound                    unknown or expired job (or another key's)      (404)
    +-- JobNotDone                  the job's result is not there yet              (409)
    +-- UnavailableError            a dependency is down or we are full: retry later (503)
    |   +-- QueueUnavailable        Redis does not answer
    |   +-- ModelUnavailable        Triton does not answer or the model is not ready
    |   +-- Overloaded              queue or in-flight bound reached               (503)
    +-- DeadlineExceeded            no result before the request deadline          (504)
    +-- Cancelled                   the client disconnected before the job ran     (499)
    |   +-- ClientDisconnected      ... or while its body was being read
    +-- JobFailed                   the job ran and failed for a reason not the client's (500)

Each carries a stable ``code`` that also travels in failed job results, so a worker's error
becomes the same HTTP answer in the gateway. HTTP statuses are decided in ``api/problems.py``.
"""

from __future__ import annotations


class ServiceError(Exception):
    code = "internal"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InputError(ServiceError):
    code = "invalid_input"


class UnsupportedMediaType(InputError):
    code = "unsupported_media_type"


class UndecodableImage(InputError):
    code = "undecodable_image"


class PayloadTooLarge(InputError):
    code = "payload_too_large"


class InvalidOptions(InputError):
    code = "invalid_options"


class BodyTooSlow(InputError):
    code = "body_too_slow"


class Unauthorized(ServiceError):
    code = "unauthorized"


class RateLimited(ServiceError):
    code = "rate_limited"

    def __init__(self, detail: str, retry_after_s: int) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s


class MissingImage(InvalidOptions):
    code = "missing_image"


class IdempotencyKeyReused(InvalidOptions):
    code = "idempotency_key_reused"


class NotFound(ServiceError):
    code = "not_found"


class JobNotDone(ServiceError):
    code = "job_not_done"


class UnavailableError(ServiceError):
    code = "unavailable"

    def __init__(self, detail: str, retry_after_s: int | None = None) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s


class QueueUnavailable(UnavailableError):
    code = "queue_unavailable"


class ModelUnavailable(UnavailableError):
    code = "model_unavailable"


class Overloaded(UnavailableError):
    code = "overloaded"


class DeadlineExceeded(ServiceError):
    code = "deadline_exceeded"


class Cancelled(ServiceError):
    code = "cancelled"


class ClientDisconnected(Cancelled):
    code = "client_disconnected"


class JobFailed(ServiceError):
    code = "job_failed"


_BY_CODE: dict[str, type[ServiceError]] = {
    cls.code: cls
    for cls in (
        ServiceError,
        InputError,
        UnsupportedMediaType,
        UndecodableImage,
        PayloadTooLarge,
        InvalidOptions,
        MissingImage,
        BodyTooSlow,
        IdempotencyKeyReused,
        Unauthorized,
        NotFound,
        JobNotDone,
        UnavailableError,
        QueueUnavailable,
        ModelUnavailable,
        Overloaded,
        DeadlineExceeded,
        Cancelled,
        ClientDisconnected,
        JobFailed,
    )
}


def error_from_code(code: str, detail: str) -> ServiceError:
    """Rebuild the exception a worker recorded in a failed result."""
    return _BY_CODE.get(code, JobFailed)(detail)
