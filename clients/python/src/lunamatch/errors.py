"""Typed exceptions of the lunamatch client, one per RPC status code.

Every failed call raises an RpcError subclass named after its
lunamatch.v1.StatusCode (the gRPC codes): NotFound for NOT_FOUND,
Unavailable for UNAVAILABLE, and so on. ``local`` tells whether the server
said so or the client concluded it without an answer (no connection in
time, or the connection lost before the answer: Unavailable; no answer in
time, or not checked for its decoding cost within the deadline:
DeadlineExceeded; an unreadable answer, or one too costly to
decode: Internal; a request not sent, over max_request_bytes or with a
bad method name: InvalidArgument), the same local
codes as the C client.
"""
from typing import Dict, Optional, Sequence, Type

from lunamatch.v1 import rpc_pb2

StatusCode = rpc_pb2.StatusCode


class LunamatchError(Exception):
    """Base of every exception this package raises on purpose."""


class RpcError(LunamatchError):
    """A call that did not end in OK.

    Attributes: code (int, a lunamatch.v1.StatusCode), message (the server's
    reason, or the client's for local errors), method (full method name),
    request_id, endpoint (URL of the last attempt, None when no endpoint was
    tried), local (True when no server answer carried the code) and attempts
    (the URLs tried, in order).
    """

    code = StatusCode.UNKNOWN

    def __init__(self, message: str = "", *, method: str = "", request_id: str = "",
                 endpoint: Optional[str] = None, local: bool = False,
                 attempts: Sequence[str] = ()):
        self.message = message
        self.method = method
        self.request_id = request_id
        self.endpoint = endpoint
        self.local = local
        self.attempts = list(attempts)
        super().__init__(message)

    @property
    def code_name(self) -> str:
        return StatusCode.Name(self.code)

    def __str__(self) -> str:
        where = " (local)" if self.local else ""
        return "%s%s: %s" % (self.code_name, where, self.message)


class Cancelled(RpcError):
    code = StatusCode.CANCELLED


class Unknown(RpcError):
    code = StatusCode.UNKNOWN


class InvalidArgument(RpcError):
    code = StatusCode.INVALID_ARGUMENT


class DeadlineExceeded(RpcError):
    code = StatusCode.DEADLINE_EXCEEDED


class NotFound(RpcError):
    code = StatusCode.NOT_FOUND


class AlreadyExists(RpcError):
    code = StatusCode.ALREADY_EXISTS


class PermissionDenied(RpcError):
    code = StatusCode.PERMISSION_DENIED


class ResourceExhausted(RpcError):
    code = StatusCode.RESOURCE_EXHAUSTED


class FailedPrecondition(RpcError):
    code = StatusCode.FAILED_PRECONDITION


class Aborted(RpcError):
    code = StatusCode.ABORTED


class OutOfRange(RpcError):
    code = StatusCode.OUT_OF_RANGE


class Unimplemented(RpcError):
    code = StatusCode.UNIMPLEMENTED


class Internal(RpcError):
    code = StatusCode.INTERNAL


class Unavailable(RpcError):
    code = StatusCode.UNAVAILABLE


class DataLoss(RpcError):
    code = StatusCode.DATA_LOSS


class Unauthenticated(RpcError):
    code = StatusCode.UNAUTHENTICATED


#: The exception class of each status code other than OK.
ERRORS: Dict[int, Type[RpcError]] = {
    cls.code: cls for cls in (
        Cancelled, Unknown, InvalidArgument, DeadlineExceeded, NotFound,
        AlreadyExists, PermissionDenied, ResourceExhausted, FailedPrecondition,
        Aborted, OutOfRange, Unimplemented, Internal, Unavailable, DataLoss,
        Unauthenticated)
}


def error_for(code: int, message: str, **kw) -> RpcError:
    """The exception for status code ``code``; an unknown code gives Unknown
    with the number in its message."""
    cls = ERRORS.get(code)
    if cls is None:
        return Unknown("status code %d: %s" % (code, message), **kw)
    return cls(message, **kw)


class DeliveryError(LunamatchError):
    """Records the producer could not deliver, or does not know whether it
    did: ``failures`` is a list of (key, reason) pairs of the records whose
    delivery failed; ``unknown`` the number of records that had no delivery
    report when flush stopped waiting, each of which may or may not have
    reached the broker."""

    def __init__(self, failures, unknown: int = 0):
        self.failures = list(failures)
        self.unknown = unknown
        parts = []
        if self.failures:
            parts.append("%d record(s) not delivered; first: %s: %s" % (
                len(self.failures), self.failures[0][0], self.failures[0][1]))
        if unknown:
            parts.append("%d record(s) of unknown outcome: no delivery report in time, "
                         "they may have reached the broker" % unknown)
        super().__init__("; ".join(parts))


class QueueFullError(LunamatchError, BufferError):
    """A record the producer did not send: its local queue stayed full for
    the send's whole timeout (the broker takes records more slowly than they
    come, or not at all; queue.buffering.max.messages and
    queue.buffering.max.kbytes size the queue). The record was not queued,
    so no flush reports it; sending it again later is safe. A BufferError,
    as confluent_kafka's produce raises at once on a full queue.

    Attributes: kind ("posting" or "profile"), key (the record id, None for
    a record sent without a key) and timeout (the seconds waited)."""

    def __init__(self, kind: str, key: Optional[str], timeout: float):
        self.kind = kind
        self.key = key
        self.timeout = timeout
        what = "%s %s" % (kind, key) if key is not None else "%s without a key" % kind
        super().__init__("%s not sent: the producer's local queue stayed full for %g s "
                         "(the broker is slow or unreachable)" % (what, timeout))
