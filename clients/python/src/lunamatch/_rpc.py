"""What the synchronous and the asyncio clients share.

The method table (derived from the MatchService descriptor of match.proto),
the typed request builders of every method, the envelope, the endpoint pool
(one nng REQ socket per endpoint, dialled in the background) and the rules
of one call: which endpoint to try, its deadline, when to retry elsewhere.
The two clients only differ in how they wait; see client.py and aio.py.
"""
import asyncio
import contextlib
import itertools
import logging
import math
import numbers
import operator
import os
import re
import socket
import threading
import time
import uuid
import warnings
from urllib.parse import urlsplit
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import pynng
from pynng import ffi, lib
from pynng._aio import _aio_map
from pynng.exceptions import check_err
from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError, Message

from lunamatch import errors
from lunamatch.v1 import match_pb2, records_pb2, rpc_pb2

SERVICE = "lunamatch.v1.MatchService"
METHOD_PREFIX = "/" + SERVICE + "/"
#: A method name: an rpc name of ASCII letters, digits and '_', the short
#: names the C client takes (lm_rpc_method_name), given alone or, unlike
#: the C client, after METHOD_PREFIX; in full at most MAX_METHOD_BYTES,
#: the server's limit (LM_RPC_MAX_METHOD).
RPC_NAME = re.compile(r"[A-Za-z0-9_]+")
MAX_METHOD_BYTES = 128

#: rpc name -> (request class, response class), from the service descriptor.
METHODS: Dict[str, Tuple[type, type]] = {
    m.name: (getattr(match_pb2, m.input_type.name), getattr(match_pb2, m.output_type.name))
    for m in match_pb2.DESCRIPTOR.services_by_name["MatchService"].methods
}

#: Methods whose request may be sent again (to another endpoint, or on a
#: fresh connection) once it was sent: the read-only ones, which are every
#: MatchService method so far; the C client keeps the same list (METHODS in
#: common/src/client.c). Listed by name, not taken from the descriptor, so
#: that a method with side effects added to match.proto is never sent twice
#: unless it is added here; a call of one not listed (or unknown, through
#: call()) is sent once: it moves to another endpoint only while no
#: connection took its request, as a call of any method does.
IDEMPOTENT = frozenset({"MatchJobs", "MatchCandidates", "ExplainMatch", "GetPosting",
                        "GetProfile", "Check"})

#: Server answers after which an idempotent call moves to another endpoint:
#: only UNAVAILABLE (the server is draining or still loading its index), as
#: in the C client (common/src/client.c) and docs/rpc.md. Every other answer
#: is the call's result; in particular RESOURCE_EXHAUSTED, which also means
#: "request larger than the server's limit" and would fail on every replica.
RETRY_CODES = frozenset({rpc_pb2.UNAVAILABLE})

#: With a single endpoint (often an address in front of several replicas,
#: like a Kubernetes Service): how many times a call answered UNAVAILABLE,
#: or whose connection was lost, is sent again on a fresh connection, and
#: how long that connection is waited for.
SINGLE_REDIALS = 2
REDIAL_WAIT = 1.0

#: The longest, in seconds, that a connection which answered UNAVAILABLE is
#: kept for the calls in flight on it (Pool.unavailable; the README's
#: "Fresh connections"). The repeat of the call answered UNAVAILABLE waits
#: REDIAL_WAIT for the fresh connection, which nng dials 0.1 s after the
#: close: the close comes early enough to leave the rest of that wait for
#: the connection itself.
CLOSING_GRACE = 0.5

#: With several endpoints: once every endpoint was tried, the next round
#: starts after a pause that doubles from ROUND_PAUSE_MIN to ROUND_PAUSE_MAX
#: seconds, while the deadline leaves room for it; endpoints without a
#: connection for ATTEMPT_CONNECT seconds count as tried in a round that
#: already had an attempt (the C client waits that long for each of them in
#: turn, this client for all of them at once).
ROUND_PAUSE_MIN = 0.05
ROUND_PAUSE_MAX = 1.0
ATTEMPT_CONNECT = 0.25

DEFAULT_URL = "tcp://127.0.0.1:7700"
#: Most endpoints of one client, as in the C client (LM_CLIENT_ENDPOINTS_MAX):
#: each has its own socket, dialer and connection.
MAX_ENDPOINTS = 16
#: Most bytes (UTF-8) of the whole endpoint list, as in the C client
#: (LM_CLIENT_URLS_MAX): the comma-separated string as given, blanks and
#: empty entries included; a sequence counts as its entries joined by commas.
MAX_ENDPOINT_LIST_BYTES = 4096
#: Largest TLS file (tls_ca, tls_cert, tls_key) read, as in the C client
#: (LM_RPC_MAX_PEM): a wrong path (a log, a device) is refused, not read
#: whole.
MAX_TLS_FILE_BYTES = 1 << 20
DEFAULT_TIMEOUT = 5.0          # seconds, as the server's default deadline
DEADLINE_GRACE = 0.25          # waited beyond the deadline for the server's own answer
MAX_TIMEOUT_MS = 600000        # the server caps deadlines at 10 minutes
MAX_RESPONSE_BYTES = 64 << 20  # default receive limit of every socket
#: nng counts a reply's SP header in a socket's receive limit (4 bytes per
#: device passed and 4 for the request id: LM_RPC_SP_HEADER_MAX in the C
#: library), so the limit leaves this room above max_response_bytes, and an
#: answer within it but over max_response_bytes is refused here (decode).
SP_HEADER_MAX = 64
#: The largest max_response_bytes, 1 GiB, as in the C client
#: (LM_CLIENT_MAX_RESPONSE): an answer decodes into many times its size, and
#: no answer of the service comes near it. It also keeps the socket's receive
#: limit (it plus the SP header's room) under the 4 GiB - 1 nng takes: pynng
#: ignores nng's refusal of a larger one, which left the socket without a
#: limit.
MAX_RESPONSE_BYTES_CEILING = 1 << 30
#: Largest request envelope sent: lunamatch-match's default limit
#: (LUNAMATCH_MAX_REQUEST_BYTES), as in the C client. nng drops a larger
#: message with its connection, so the caller would only see it lost.
MAX_REQUEST_BYTES = 1 << 20
#: The largest max_request_bytes: the largest limit lunamatch-match can be
#: given (LM_CLIENT_MAX_REQUEST in the C client).
MAX_REQUEST_BYTES_CEILING = 64 << 20
#: The metadata entry naming the calling service, which the server's
#: decision log records, and the server's limits on a metadata value and on
#: the entries of one request (LM_RPC_MAX_METADATA_VALUE,
#: LM_RPC_MAX_METADATA), the caller entry included.
CALLER_KEY = "caller"
MAX_METADATA_VALUE = 1024
MAX_METADATA = 32
CONNECT_POLL = 0.01            # seconds between looks for a connection
#: The longest, in seconds, that close() waits for the calls of other
#: threads to come out of nng (Pool.run: opening a context, starting an
#: operation on it, closing it, each microseconds), so that no nng
#: operation on a call's context overlaps the close of its socket
#: (Pool.close). Only a thread stopped inside such a section (a debugger)
#: makes it run out.
CLOSE_WAIT = 5.0
#: Memory an answer of n bytes may take to decode (its envelope, then its
#: payload, each): DECODE_FLOOR + DECODE_FACTOR * n bytes, as in the C client
#: (LM_CLIENT_DECODE_FLOOR, LM_CLIENT_DECODE_FACTOR). An empty message is two
#: bytes on the wire and some hundred in memory, so a broken or hostile
#: server could otherwise make a decode take fifty times max_response_bytes.
#: The cost is estimated from the wire before decoding (decode_cost).
DECODE_FLOOR = 1 << 20
DECODE_FACTOR = 16

log = logging.getLogger("lunamatch.client")


def endpoint_list(endpoints: Union[None, str, Iterable[str]]) -> List[str]:
    """URLs from a list, a comma-separated string, or LUNAMATCH_RPC_URL; at
    least one, at most MAX_ENDPOINTS, the list at most MAX_ENDPOINT_LIST_BYTES
    (else ValueError)."""
    if endpoints is None:
        endpoints = os.environ.get("LUNAMATCH_RPC_URL", DEFAULT_URL)
    if isinstance(endpoints, str):
        endpoints = endpoints.split(",")
    endpoints = list(endpoints)
    size = len(",".join(u or "" for u in endpoints).encode("utf-8", "surrogatepass"))
    if size > MAX_ENDPOINT_LIST_BYTES:
        raise ValueError("endpoint list of %d bytes: at most %d" % (
            size, MAX_ENDPOINT_LIST_BYTES))
    urls = [u.strip() for u in endpoints if u and u.strip()]
    if not urls:
        raise ValueError("no endpoint given")
    if len(urls) > MAX_ENDPOINTS:
        raise ValueError("%d endpoints: at most %d" % (len(urls), MAX_ENDPOINTS))
    return urls


#: The schemes of nng's TCP transports, plain and TLS, whose URLs end in a
#: port (see check_port). In lower case: nng takes a scheme in any case, so
#: it is compared in lower case (url_scheme).
TCP_SCHEMES = frozenset({"tcp", "tcp4", "tcp6", "tls+tcp", "tls+tcp4", "tls+tcp6"})
#: The schemes of the TLS endpoints, as in the C client (lm_rpc_url_is_tls).
TLS_SCHEMES = frozenset({"tls+tcp", "tls+tcp4", "tls+tcp6"})


def url_scheme(url: str) -> Optional[str]:
    """The scheme of url in lower case ("TLS+TCP://h:1" -> "tls+tcp"), as
    nng reads it, or None when it has no "://"."""
    scheme, sep, _ = url.partition("://")
    return scheme.lower() if sep else None


def is_tls(url: str) -> bool:
    """Whether url is a TLS endpoint's (TLS_SCHEMES, in any case)."""
    return url_scheme(url) in TLS_SCHEMES


#: A service name lm_rpc_port_ok looks up: a letter, then letters, digits,
#: '-' and '_', at most 64 characters.
_SERVICE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")


def _known_service(name: str) -> bool:
    """Whether name is a TCP service name the system knows (/etc/services),
    which nng resolves to its port."""
    if not _SERVICE_NAME.fullmatch(name):
        return False
    try:
        socket.getservbyname(name, "tcp")
    except OSError:
        return False
    return True


def check_port(url: str) -> None:
    """ValueError naming url when it is a TCP URL (TCP_SCHEMES) whose port
    is neither a number from 1 to 65535 in at most 5 decimal digits nor a
    service name the system knows (the scheme in any case, as nng takes
    it), the rule of the C client
    (lm_rpc_port_ok): nng takes such a URL (7x00, 99999, 0) without a word,
    and every call would wait out its deadline for a connection that never
    comes. A TCP URL without a port is left to nng, which refuses it."""
    if url_scheme(url) not in TCP_SCHEMES:
        return
    rest = url.partition("://")[2]
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if authority.startswith("["):  # an IPv6 literal: the port is after "]"
        close = authority.find("]")
        if close < 0:
            return
        after = authority[close + 1:]
        if not after.startswith(":"):
            return
        port = after[1:]
    else:
        if ":" not in authority:
            return
        port = authority.rpartition(":")[2]
    if port.isascii() and port.isdigit():
        if len(port) <= 5 and 1 <= int(port) <= 65535:
            return
    elif _known_service(port):
        return
    raise ValueError("cannot dial %s: port %r is neither a number from 1 to 65535 "
                     "nor a service name the system knows" % (url, port))


def checked_timeout(timeout: float) -> float:
    """timeout (seconds) as a float, cut to the server's cap of
    MAX_TIMEOUT_MS as in the C client: a real number (int, float), else
    TypeError (a bool too: True is no number of seconds); positive and
    finite, else ValueError."""
    if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real):
        raise TypeError("timeout must be a number of seconds (int or float), not %s"
                        % type(timeout).__name__)
    if not 0 < timeout < math.inf:  # false for NaN too
        raise ValueError("timeout must be a positive, finite number of seconds, not %r"
                         % (timeout,))
    return float(min(timeout, MAX_TIMEOUT_MS / 1000))


def _byte_count(name: str, value: Any, ceiling: int) -> int:
    """value of option name, a number of bytes: an int (not a bool, nor a
    float even if whole), else TypeError; from 0 to ceiling, else
    ValueError."""
    if isinstance(value, bool):
        raise TypeError("%s must be an int, not bool" % name)
    try:
        n = operator.index(value)
    except TypeError:
        raise TypeError("%s must be an int, not %s" % (name, type(value).__name__)) from None
    if not 0 <= n <= ceiling:
        raise ValueError("%s must be from 0 (the default) to %d, not %d" % (name, ceiling, n))
    return n


def _message(value: Any, cls: type, what: str) -> Message:
    """value as a message of cls: the message itself, a dict in the JSON form
    (field names as in the .proto or lowerCamelCase, enums by name) or a JSON
    string."""
    if isinstance(value, cls):
        return value
    try:
        if isinstance(value, (str, bytes)):
            return json_format.Parse(value, cls())
        if isinstance(value, Mapping):
            return json_format.ParseDict(value, cls())
    except json_format.ParseError as e:
        raise ValueError("%s: %s" % (what, e)) from e
    raise TypeError("%s: expected %s, dict or JSON text, not %s"
                    % (what, cls.__name__, type(value).__name__))


def _explain(level: Union[None, int, str]) -> int:
    """An ExplainLevel from its number (an integer, sent as it is), its full
    name or its short name ("FULL"); None is EXPLAIN_LEVEL_UNSPECIFIED (the
    server's default). A bool is a TypeError: explain=True would be level 1,
    EXPLAIN_LEVEL_NONE, and False the server's default, the opposite of what
    the caller means. So is any other number (2.9 is no level) or type."""
    if level is None:
        return match_pb2.EXPLAIN_LEVEL_UNSPECIFIED
    if isinstance(level, str):
        name = level.upper()
        if not name.startswith("EXPLAIN_LEVEL_"):
            name = "EXPLAIN_LEVEL_" + name
        return match_pb2.ExplainLevel.Value(name)
    if not isinstance(level, bool):
        try:
            return operator.index(level)
        except TypeError:
            pass
    raise TypeError("explain: expected an ExplainLevel number (int) or name, not %s"
                    % type(level).__name__)


def _one_subject(id_name: str, id_value: Any, inline_name: str, inline_value: Any) -> None:
    """ValueError when a match request is given both its subjects, a stored
    record's id and an inline record: they are the two fields of one oneof,
    so the request would carry only one and the other would be dropped
    without a word."""
    if id_value is not None and inline_value is not None:
        raise ValueError("%s and %s given: a match request takes one of them"
                         % (id_name, inline_name))


class Methods:
    """The typed MatchService methods. Each builds its request and hands it
    to ``self._invoke(method, request, unwrap, timeout, metadata)``, which
    the sync client implements as a blocking call and the asyncio client as
    a coroutine; so each method here returns the result (sync) or an
    awaitable of it (asyncio). unwrap names the field of the response that
    is the result, a record every OK answer carries (an OK answer without
    it is a local Internal, see Call.settle), or is None for the response
    itself.

    ``timeout`` is in seconds (None: the client's default; a real number,
    int or float but not a bool, else TypeError; positive and finite, else
    ValueError; at most 10 minutes) and bounds the whole call,
    retries included. ``metadata`` is a mapping of lower-case keys
    to strings sent in the envelope: at most MAX_METADATA (32) entries,
    the client's caller entry included, else ValueError.
    """

    def match_jobs(self, candidate_id: Optional[str] = None, *, profile=None,
                   top_k: int = 0, filters=None, explain=None, as_of: int = 0,
                   timeout: Optional[float] = None, metadata=None):
        """Jobs for a stored candidate (candidate_id) or an inline profile
        (CandidateProfile, dict or JSON), one of them: both are a ValueError
        (the request's subject is one or the other); neither goes to the
        server, which answers InvalidArgument. as_of: Unix seconds at which
        freshness and expiry are judged (0: now). Returns a
        MatchJobsResponse."""
        _one_subject("candidate_id", candidate_id, "profile", profile)
        req = match_pb2.MatchJobsRequest(top_k=top_k, explain=_explain(explain), as_of=as_of)
        if profile is not None:
            req.profile.CopyFrom(_message(profile, records_pb2.CandidateProfile, "profile"))
        elif candidate_id is not None:
            req.candidate_id = candidate_id
        if filters is not None:
            req.filters.CopyFrom(_message(filters, match_pb2.JobFilters, "filters"))
        return self._invoke("MatchJobs", req, None, timeout, metadata)

    def match_candidates(self, job_id: Optional[str] = None, *, posting=None,
                         top_k: int = 0, filters=None, explain=None, as_of: int = 0,
                         timeout: Optional[float] = None, metadata=None):
        """Candidates for a stored posting (job_id) or an inline posting
        (JobPosting, dict or JSON), one of them as in match_jobs; as_of as
        in match_jobs. Returns a MatchCandidatesResponse."""
        _one_subject("job_id", job_id, "posting", posting)
        req = match_pb2.MatchCandidatesRequest(top_k=top_k, explain=_explain(explain),
                                               as_of=as_of)
        if posting is not None:
            req.posting.CopyFrom(_message(posting, records_pb2.JobPosting, "posting"))
        elif job_id is not None:
            req.job_id = job_id
        if filters is not None:
            req.filters.CopyFrom(_message(filters, match_pb2.CandidateFilters, "filters"))
        return self._invoke("MatchCandidates", req, None, timeout, metadata)

    def explain_match(self, candidate_id: str, job_id: str, *, as_of: int = 0,
                      timeout: Optional[float] = None, metadata=None):
        """One pair in full; as_of as in match_jobs. Returns an
        ExplainMatchResponse."""
        req = match_pb2.ExplainMatchRequest(candidate_id=candidate_id, job_id=job_id,
                                            as_of=as_of)
        return self._invoke("ExplainMatch", req, None, timeout, metadata)

    def get_posting(self, id: str, *, timeout: Optional[float] = None, metadata=None):
        """The stored (normalized) JobPosting; NotFound when absent."""
        return self._invoke("GetPosting", match_pb2.GetPostingRequest(id=id),
                            "posting", timeout, metadata)

    def get_profile(self, id: str, *, timeout: Optional[float] = None, metadata=None):
        """The stored (normalized) CandidateProfile; NotFound when absent."""
        return self._invoke("GetProfile", match_pb2.GetProfileRequest(id=id),
                            "profile", timeout, metadata)

    def check(self, service: str = "", *, timeout: Optional[float] = None, metadata=None):
        """Health: a HealthCheckResponse (status SERVING when calls are
        served)."""
        return self._invoke("Check", match_pb2.HealthCheckRequest(service=service),
                            None, timeout, metadata)

    def call(self, method: str, request: Union[Message, bytes], *,
             timeout: Optional[float] = None, metadata=None):
        """The generic form: method is a short rpc name ("GetPosting") or a
        full one (RPC_NAME, MAX_METHOD_BYTES: any other is a local
        InvalidArgument, as in the C client); request a message or raw
        payload bytes (bytes-like; anything else is a TypeError). Returns
        the decoded response message for a known method, else the raw
        payload bytes."""
        return self._invoke(method, request, None, timeout, metadata)


#: Every pool not yet closed. pynng's sockets refer to themselves, so the
#: cycle collector would otherwise finalize (close) the sockets of a client
#: dropped without close() in whatever thread it runs, one of nng's own
#: included, where nng_close waits for that thread and hangs (see
#: ClientBase.__del__). Held here, sockets are closed only by Pool.close.
_open_pools: set = set()
_open_pools_lock = threading.Lock()


class Pool:
    """One REQ socket per endpoint, each dialled in the background and
    redialled by nng (100 ms to 2 s back-off). nng's timer-based resend is
    off, so a slow server never gets a silent duplicate. Thread-safe.

    Which endpoints have a connection is tracked here from nng's pipe
    events, not read from pynng's pipe list, which a reply that arrives
    after its connection closed can add a dead pipe back to. With several
    endpoints, the nng operations of the calls on an endpoint (see Flight)
    are aborted when one of its connections goes, so that the calls move
    on, as in the C client.

    A call counts as in flight on an endpoint from board() to leave(). A
    connection that answered UNAVAILABLE is not closed at once but when
    the calls in flight on it have ended, within CLOSING_GRACE (see
    unavailable(); the README's "Fresh connections" gives the rule).

    Every nng function a call runs with a socket's context (opening the
    context, starting nng_ctx_send or nng_ctx_recv on it, closing it, or
    stopping an operation on it) runs inside a section (run), counted under the
    lock: with the nng that pynng bundles, such a function that overlaps
    nng_close of its socket can hang nng_close or abort the process. close()
    marks the pool closed, after which no section starts (run raises
    pynng.Closed, enter() returns None), aborts the nng operations of the calls
    in flight (pynng.Closed, see flying), waits for the sections under way
    to end, microseconds, and closes every socket, which closes their
    contexts too. It does not wait for the calls themselves: one waiting
    for its answer, decoding it or on an event loop that does not run is
    outside nng. Once closed, board() admits no call; the calls waiting for
    a connection see closed (Call.pick, Call.give_up), and wait_closed()
    ends the sync client's pause at once. sockets keeps the closed sockets,
    so that an index a call holds stays valid."""

    def __init__(self, urls: Sequence[str], tls: Callable[[str], pynng.TLSConfig],
                 max_response_bytes: int):
        """tls: a function giving the TLS configuration of one tls+ URL (see
        TLSOptions.config); each tls+ endpoint gets its own. A URL nng
        cannot dial, or a TCP one whose port is neither from 1 to 65535
        nor a known service name (check_port), raises ValueError."""
        self.urls = list(urls)
        self.max_response_bytes = max_response_bytes
        self.sockets: List[pynng.Req0] = []
        self._rr = itertools.count()
        self._lock = threading.Lock()
        # Notified when a section ends and when the sockets are closed.
        self._quiet = threading.Condition(self._lock)
        self._closed = threading.Event()
        # The sections under way per thread (threading.get_ident()): close()
        # waits for those of the other threads (see close).
        self._inside: Dict[int, int] = {}
        # The sockets: "open", "closing" (one close() or section closes
        # them now, outside the lock), "closed".
        self._sockets_state = "open"
        # Whether the last section to end closes the sockets (close() could
        # not wait for it).
        self._close_on_exit = False
        self._live: List[set] = [set() for _ in self.urls]  # pipe ids up now
        self._flights: List[set] = [set() for _ in self.urls]  # nng aios waiting
        self._losses: List[int] = [0 for _ in self.urls]  # connections gone so far
        self._boarded: List[int] = [0 for _ in self.urls]  # calls in flight
        # The connection to close per endpoint, or None: (pipe id, nng_pipe,
        # the time.monotonic() by which it is closed).
        self._closing: List[Optional[tuple]] = [None for _ in self.urls]
        with _open_pools_lock:
            _open_pools.add(self)
        try:
            for url in self.urls:
                check_port(url)
            for j, url in enumerate(self.urls):
                s = pynng.Req0(resend_time=-1,
                               recv_max_size=max_response_bytes + SP_HEADER_MAX,
                               reconnect_time_min=100, reconnect_time_max=2000)
                self.sockets.append(s)
                s.add_post_pipe_connect_cb(lambda p, j=j: self._pipe(j, p.id, True))
                s.add_post_pipe_remove_cb(lambda p, j=j: self._pipe(j, p.id, False))
                if is_tls(url):
                    s.tls_config = tls(url)
                try:
                    s.dial(url, block=False)
                except pynng.NNGException as e:
                    raise ValueError("cannot dial %s: %s" % (url, e)) from e
        except BaseException:
            self.close()
            raise

    def _pipe(self, j: int, pipe_id: int, up: bool) -> None:
        if not up:
            self.down(j, pipe_id)
            return
        with self._lock:
            self._live[j].add(pipe_id)

    def down(self, j: int, pipe_id: int) -> None:
        """Connection pipe_id of endpoint j is gone, or being closed by the
        client. With several endpoints, the calls waiting on j are aborted
        (ECONNRESET): sent on that connection, their answer will not come;
        not sent, they wait for a connection the call may find elsewhere."""
        with self._lock:
            self._down(j, pipe_id)

    def _down(self, j: int, pipe_id: int) -> None:
        """down(), with the lock held."""
        if pipe_id not in self._live[j]:
            return
        self._live[j].discard(pipe_id)
        if self._closing[j] is not None and self._closing[j][0] == pipe_id:
            self._closing[j] = None
        self._losses[j] += 1
        if len(self.urls) > 1:
            for aio in self._flights[j]:
                lib.nng_aio_abort(aio, lib.NNG_ECONNRESET)

    def unavailable(self, j: int, pipe) -> None:
        """Connection pipe (an nng_pipe) of endpoint j answered UNAVAILABLE:
        this server will not serve it, and nng is to dial j afresh. It is
        marked, so that no call starts on it any more (board() looks past
        it), and closed when the last call in flight on j leaves, at once
        when none is, or by the first call that looks for a connection of
        j (board) once CLOSING_GRACE has passed, under the calls still in
        flight on it. The caller is one of those in flight. A connection
        already gone is not marked; one marked is one still up, and its
        mark goes with it (_down), so a close never meets a pipe id nng
        gave to another connection."""
        pipe_id = lib.nng_pipe_id(pipe)
        with self._lock:
            if self._closing[j] is None and pipe_id in self._live[j]:
                self._closing[j] = (pipe_id, pipe, time.monotonic() + CLOSING_GRACE)
            self._close_marked(j)

    def _close_marked(self, j: int) -> None:
        """Closes j's marked connection when no call is in flight on j or
        its grace is over; with the lock held (nng reports the removal from
        its own thread, not from within nng_pipe_close). It counts as gone
        at once."""
        closing = self._closing[j]
        if self._closed.is_set():
            return  # the connection goes with its socket
        if closing is not None and (self._boarded[j] == 0
                                    or time.monotonic() >= closing[2]):
            lib.nng_pipe_close(closing[1])
            self._down(j, closing[0])

    def board(self, j: int) -> Optional[int]:
        """losses(j) if endpoint j has a connection that takes calls now
        (one up and not marked closing), else None: read together, so that
        a connection that goes after this look counts as gone since (see
        flying). When not None, the call counts as in flight on j until it
        calls leave(j) with this thread's id. Closes a marked connection
        whose grace is over (unavailable). None once the pool is closed:
        no call starts after close()."""
        with self._lock:
            if self._closed.is_set():
                return None
            self._close_marked(j)
            if len(self._live[j]) - (self._closing[j] is not None) <= 0:
                return None
            self._boarded[j] += 1
            return self._losses[j]

    def leave(self, j: int) -> None:
        """A call that board(j) admitted is no longer in flight on j: its
        context is closed, left to the close of its socket (Flight), or
        was never opened."""
        with self._lock:
            self._boarded[j] -= 1
            self._close_marked(j)

    def enter(self) -> Optional[int]:
        """Starts a section of this thread (see the class): None, and
        nothing started, once the pool is closed. Otherwise the caller runs
        its nng functions, then exit() with the token returned (the
        thread's id)."""
        with self._lock:
            if self._closed.is_set():
                return None
            me = threading.get_ident()
            self._inside[me] = self._inside.get(me, 0) + 1
            return me

    def exit(self, token: int) -> None:
        """Ends the section that enter() returned token for. The last
        section to end in a closed pool whose close() could not wait for it
        closes the sockets."""
        with self._lock:
            n = self._inside.get(token, 0)
            if n <= 1:
                self._inside.pop(token, None)
            else:
                self._inside[token] = n - 1
            self._quiet.notify_all()
            if not (self._close_on_exit and not self._inside):
                return
            self._close_on_exit = False
            self._sockets_state = "closing"
        self._close_sockets()

    def run(self, fn, *args):
        """fn(*args), an nng function with a socket's context, in a section
        (enter() and exit() around it, in one try block rather than a
        generator's context manager: a KeyboardInterrupt that lands as a
        generator resumes could leave the section counted); raises
        pynng.Closed, and runs nothing, once the pool is closed."""
        token = self.enter()
        if token is None:
            raise pynng.Closed("the client is closed", lib.NNG_ECLOSED)
        try:
            return fn(*args)
        finally:
            self.exit(token)

    def stop(self, aio) -> None:
        """Stops aio's operation on a context, which may still be pending,
        and waits for its completion (nng_aio_stop), inside a section;
        once the pool is closed, close() has aborted it (it is registered,
        see flying) and nothing is done. For a call ended otherwise than by
        the completion (its coroutine closed, an exception in its wait)."""
        token = self.enter()
        if token is not None:
            try:
                lib.nng_aio_stop(aio)
            finally:
                self.exit(token)

    def losses(self, j: int) -> int:
        """How many connections of endpoint j have gone so far."""
        with self._lock:
            return self._losses[j]

    @contextlib.contextmanager
    def flying(self, j: int, aio, since: Optional[int] = None):
        """Registers an nng aio of a call on endpoint j while it runs. With
        since (losses(j) before the operation started): aborts the aio at
        once, as down() would have, when a connection of j went since."""
        with self._lock:
            self._flights[j].add(aio)
            if self._closed.is_set():
                # close() aborted the aios registered before this one.
                lib.nng_aio_abort(aio, lib.NNG_ECLOSED)
            elif since is not None and self._losses[j] != since and len(self.urls) > 1:
                lib.nng_aio_abort(aio, lib.NNG_ECONNRESET)
        try:
            yield
        finally:
            with self._lock:
                self._flights[j].discard(aio)

    def connected(self, j: int) -> bool:
        """Whether endpoint j has a connection now."""
        with self._lock:
            return bool(self._live[j])

    def close(self) -> None:
        """Marks the pool closed (board() admits no more calls, no section
        starts), aborts the nng operations of the calls in flight
        (pynng.Closed: each call ends with a local Cancelled), waits for
        the sections under way on other threads to end (microseconds;
        at most CLOSE_WAIT seconds), then closes the sockets, and with them
        the calls' contexts. Returns once the sockets are closed, whether
        this call or an earlier one closes them. Idempotent; any thread.

        The calls in flight are not waited for, only their sections: a
        call waiting for its answer, decoding one, or a task of an event
        loop that does not run (or that close() holds up) is outside nng,
        and ends with pynng.Closed or its answer when it goes on. Should the
        wait run out, close() returns and the last section to end closes
        the sockets. No socket is closed while a call runs an nng function
        with one of its contexts. Not from a signal handler: the code it
        interrupted may hold the pool's lock. So the closing thread runs no
        section itself: a count of its own is one a KeyboardInterrupt left
        behind (it can land between the count and the section's start or
        end, and Python delivers it to the main thread only), and is
        dropped, so that close() in the except block of a call Ctrl-C
        interrupted closes the sockets. Another thread that closes while
        the main thread holds such a count waits CLOSE_WAIT and leaves the
        sockets open (logged)."""
        me = threading.get_ident()
        with self._lock:
            if not self._closed.is_set():
                self._closed.set()
                for flights in self._flights:
                    for aio in flights:
                        lib.nng_aio_abort(aio, lib.NNG_ECLOSED)
            end = time.monotonic() + CLOSE_WAIT
            while True:
                if self._sockets_state == "closed":
                    return
                self._inside.pop(me, None)  # left by an interrupt (above)
                if self._sockets_state == "open" and not self._inside:
                    self._sockets_state = "closing"
                    break
                left = end - time.monotonic()
                if left <= 0:
                    if self._sockets_state == "open":
                        log.warning("close: a call still inside nng after %.0f s; it "
                                    "closes the sockets as it comes out", CLOSE_WAIT)
                        self._close_on_exit = True
                    return
                self._quiet.wait(left)
        self._close_sockets()

    def _close_sockets(self) -> None:
        """Closes every socket, by the one close() or section that set
        _sockets_state to "closing", once no section is under way. Not
        under the lock: nng reports the connections the close ends (_pipe,
        which takes it) from its own threads, and waits for them."""
        try:
            for s in self.sockets:
                s.close()
        finally:
            with _open_pools_lock:
                _open_pools.discard(self)
            with self._lock:
                self._sockets_state = "closed"
                self._quiet.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def wait_closed(self, seconds: float) -> bool:
        """Waits at most seconds for close(); whether the pool is closed."""
        return self._closed.wait(seconds)

    def start(self) -> int:
        """A starting index that rotates across calls, spreading load."""
        with self._lock:
            return next(self._rr)


class Flight:
    """One attempt's request and answer, on a new context of endpoint j's
    socket, by a call that Pool.board(j) admitted (Call.pick): the call
    leaves j when the flight ends. Each operation has its own time limit
    and runs on an nng aio that the pool aborts when a connection of the
    endpoint goes (Pool.down): pynng.ConnectionReset then, as when nng
    fails a request whose connection broke. send() and recv() block;
    asend() and arecv() are their coroutines. A send that fails leaves
    nothing in flight. since, for a send: losses(j) when the call found j
    connected (Call.pick), so that a connection that went since aborts the
    send at once.

    The context is nng's own (an nng_ctx, not a pynng Context, whose
    finalizer would close it whenever it is collected). Opening it,
    starting an operation on it and closing it each run in a section of
    the pool (Pool.run): once the pool is closed, opening it or
    starting an operation raises pynng.Closed, and it is not closed here
    but with its socket."""

    def __init__(self, pool: Pool, j: int):
        self.pool = pool
        self.j = j
        try:
            # Owns the nng_ctx, which ctx[0] only refers to.
            self.ctx = ffi.new("nng_ctx *")
            check_err(pool.run(lib.nng_ctx_open, self.ctx, pool.sockets[j].socket))
        except BaseException:
            pool.leave(j)
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        try:
            token = self.pool.enter()
            if token is not None:
                try:
                    lib.nng_ctx_close(self.ctx[0])
                finally:
                    self.pool.exit(token)
        finally:
            self.pool.leave(self.j)

    def send(self, data: bytes, ms: int, since: int) -> None:
        a = _Aio()
        try:
            check_err(lib.nng_aio_set_msg(a.aio, _new_msg(data)))
            self._run(a, lib.nng_ctx_send, ms, since)
        finally:
            _free_unsent(a.aio)
            a.free()

    def recv(self, ms: int) -> pynng.Message:
        a = _Aio()
        try:
            self._run(a, lib.nng_ctx_recv, ms, self.pool.losses(self.j))
            return pynng.Message(lib.nng_aio_get_msg(a.aio))
        finally:
            a.free()

    def _run(self, a: "_Aio", op, ms: int, since: int) -> None:
        lib.nng_aio_set_timeout(a.aio, ms)
        # The aio is open to aborts only once op has returned: an abort
        # that lands while nng has begun the operation but not scheduled it
        # is lost (nng 1.11). A connection that went meanwhile, or before
        # (from since on), aborts it then.
        self.pool.run(op, self.ctx[0], a.aio)
        with self.pool.flying(self.j, a.aio, since):
            try:
                a.done.wait()
            except BaseException:  # a KeyboardInterrupt: not done yet
                self.pool.stop(a.aio)
                raise
        check_err(lib.nng_aio_result(a.aio))

    async def asend(self, data: bytes, ms: int, since: int) -> None:
        a = _AsyncAio()
        try:
            check_err(lib.nng_aio_set_msg(a.aio, _new_msg(data)))
            await self._arun(a, lib.nng_ctx_send, ms, since)
        finally:
            _free_unsent(a.aio)
            a.free()

    async def arecv(self, ms: int) -> pynng.Message:
        a = _AsyncAio()
        try:
            await self._arun(a, lib.nng_ctx_recv, ms, self.pool.losses(self.j))
            msg = lib.nng_aio_get_msg(a.aio)
            lib.nng_aio_set_msg(a.aio, ffi.NULL)
            return pynng.Message(msg)
        finally:
            # An answer received by a call cancelled meanwhile is freed here.
            _free_unsent(a.aio)
            a.free()

    async def _arun(self, a: "_AsyncAio", op, ms: int, since: int) -> None:
        """_run for the asyncio client: op on a's aio, open to aborts only
        once op has returned (an abort that lands before is lost, and the
        operation waits out its limit); a connection that went since
        aborts it then. Raises as _run does, or CancelledError when the
        task was cancelled (see _AsyncAio.wait). A coroutine closed
        while it waits (its task collected once its loop no longer runs)
        stops the operation before its aio is freed."""
        lib.nng_aio_set_timeout(a.aio, ms)
        self.pool.run(op, self.ctx[0], a.aio)
        with self.pool.flying(self.j, a.aio, since):
            try:
                await a.wait()
            except GeneratorExit:
                self.pool.stop(a.aio)
                raise


class _Aio:
    """An nng aio of the sync client, whose completion sets done (through
    pynng's completion callback, as its asyncio aios do). The caller waits
    on done, not with nng_aio_wait: in nng 1.11 an abort from another
    thread (Pool.down) that finds no cancel function, because nng has begun
    the operation but not scheduled it or is completing it, takes the
    aio's task off the books, so nng_aio_wait returns at once, with the
    operation still going on (a send taken as done, a receive without its
    message) or with nng still finishing it while the aio is freed. The
    callback runs once whatever the abort did. free() it once done, or
    when the operation never started."""

    def __init__(self):
        self.done = threading.Event()
        self._alloc(self.done.set)

    def _alloc(self, cb: Callable[[], None]) -> None:
        # Kept here, so that its id, the key in pynng's map, stays ours.
        self._cb = cb
        _aio_map[id(self._cb)] = self._cb
        p = ffi.new("nng_aio **")
        err = lib.nng_aio_alloc(p, lib._async_complete, ffi.cast("void *", id(self._cb)))
        if err:
            _aio_map.pop(id(self._cb), None)
            check_err(err)
        self.aio = p[0]

    def free(self) -> None:
        """Frees the aio (a pending operation is cancelled and its callback
        waited for), and the callback's entry should it never have run."""
        lib.nng_aio_free(self.aio)
        if _aio_map.get(id(self._cb)) is self._cb:
            _aio_map.pop(id(self._cb), None)


class _AsyncAio(_Aio):
    """An nng aio of the asyncio client, whose completion resolves a
    future of the running event loop; wait() awaits it. Not pynng's
    AIOHelper, which on a cancellation returns normally when the operation
    had completed before its abort landed (an answer in but not yet taken,
    a request just handed to a connection): the task's cancellation was
    swallowed, and the call went on as if never cancelled."""

    def __init__(self):
        loop = asyncio.get_running_loop()
        fut = self.fut = loop.create_future()

        def completed():
            try:
                loop.call_soon_threadsafe(_resolve, fut)
            except RuntimeError:  # the loop is closed: nobody waits
                pass

        self._alloc(completed)

    async def wait(self) -> None:
        """Waits for the operation to complete and raises its error. A
        cancellation of the task aborts the operation and, once nng has
        completed it (whatever its result), raises CancelledError."""
        cancelled = None
        while True:
            try:
                await asyncio.shield(self.fut)
                break
            except asyncio.CancelledError as e:
                if cancelled is None:
                    lib.nng_aio_cancel(self.aio)
                cancelled = e
        if cancelled is not None:
            raise cancelled
        check_err(lib.nng_aio_result(self.aio))


def _resolve(fut) -> None:
    if not fut.done():
        fut.set_result(None)


def _new_msg(data: bytes):
    p = ffi.new("nng_msg **")
    check_err(lib.nng_msg_alloc(p, 0))
    err = lib.nng_msg_append(p[0], data, len(data))
    if err:
        lib.nng_msg_free(p[0])
        check_err(err)
    return p[0]


def _free_unsent(aio) -> None:
    """Frees the message a failed send leaves in its aio (nng gives it
    back to the caller)."""
    msg = lib.nng_aio_get_msg(aio)
    if msg != ffi.NULL:
        lib.nng_aio_set_msg(aio, ffi.NULL)
        lib.nng_msg_free(msg)


def url_host(url: str) -> Optional[str]:
    """The host of an endpoint URL ("tls+tcp://match.internal:7700" ->
    "match.internal"; brackets of an IPv6 literal removed), or None when it
    has none (a wildcard or an ipc:// path)."""
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return None
    return host if host and host != "*" else None


#: The PEM block each TLS file must hold (nng's TLS engine looks for these).
_PEM_BLOCKS = {
    "tls_ca": ("-----BEGIN CERTIFICATE-----", re.compile(r"-----BEGIN CERTIFICATE-----")),
    "tls_cert": ("-----BEGIN CERTIFICATE-----", re.compile(r"-----BEGIN CERTIFICATE-----")),
    "tls_key": ("-----BEGIN ... PRIVATE KEY-----",
                re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")),
}


def _read_pem(what: str, path: str) -> str:
    """The text of TLS file path (option what): at most MAX_TLS_FILE_BYTES,
    not empty, UTF-8 without a NUL byte (as the C client's read_pem: nng
    takes the text up to its first NUL), holding the PEM block of its kind;
    else ValueError naming the option, the file and what is wrong, a file
    that cannot be read (missing, a directory, no permission) included."""
    where = "%s file %s" % (what, path)
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_TLS_FILE_BYTES + 1)
    except OSError as e:
        raise ValueError("%s: cannot be read: %s" % (where, e.strerror or e)) from e
    if len(data) > MAX_TLS_FILE_BYTES:
        raise ValueError("%s: larger than %d bytes" % (where, MAX_TLS_FILE_BYTES))
    if not data:
        raise ValueError("%s: empty" % where)
    nul = data.find(b"\0")
    if nul >= 0:
        raise ValueError("%s: not PEM text (a NUL byte at offset %d)" % (where, nul))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError("%s: not UTF-8 text (byte 0x%02x at offset %d)" % (
            where, data[e.start], e.start)) from None
    name, block = _PEM_BLOCKS[what]
    if not block.search(text):
        raise ValueError("%s: not PEM: no %s line" % (where, name))
    return text


class TLSOptions:
    """The client TLS settings of tls+tcp:// endpoints, from PEM files.

    With ca the server's certificate must chain to it and carry the server
    name: server_name when given, else the host of the endpoint's URL, as
    the C client does (common/src/client.c). The name is always set, since
    pynng (0.8.x at least) and nng check no name at all when none is set,
    which would accept any certificate the CA signed. Without ca the
    connection is encrypted but the server is not verified, and config()
    logs a warning, as the C client does. cert and key give mutual TLS.

    The files are for the TLS endpoints among urls (is_tls), and read only
    when there is one, as the C client reads them only for such an
    endpoint: they are read and handed to nng here, so that one nng cannot
    use is a ValueError naming it (see _read_pem). Given with an endpoint
    that is not a TLS one, ca or cert is not used for it, and a warning
    names that endpoint, as the C client's client.tls.unused.
    """

    def __init__(self, ca: Optional[str], cert: Optional[str], key: Optional[str],
                 server_name: Optional[str], urls: Sequence[str]):
        if bool(cert) != bool(key):
            raise ValueError("tls_cert and tls_key go together")
        self.paths = dict(tls_ca=ca, tls_cert=cert, tls_key=key)
        self.server_name = server_name or None
        self.ca = self.cert = self.key = None
        if ca or cert:
            for url in urls:
                if not is_tls(url):
                    log.warning("TLS files are set but %s is not a tls+tcp:// URL: "
                                "they are not used for it", url)
        if not any(is_tls(u) for u in urls):
            return
        self.ca = _read_pem("tls_ca", ca) if ca else None
        self.cert = _read_pem("tls_cert", cert) if cert else None
        self.key = _read_pem("tls_key", key) if key else None
        if self.cert:
            # The certificate alone first, so that an error names its file.
            self._apply(pynng.TLSConfig(pynng.TLSConfig.MODE_CLIENT).set_ca_chain, (self.cert,),
                        "tls_cert file %s: not a certificate nng can use" % cert)
        if self.ca or self.cert:
            # Only with files to check: a client of tcp:// endpoints needs
            # no TLS in nng at all.
            self._config(None)

    def server_name_for(self, url: str) -> Optional[str]:
        """The name the server's certificate of url is checked against."""
        return self.server_name or url_host(url)

    def settings(self, url: str) -> Dict[str, Any]:
        """The pynng.TLSConfig arguments for url (separate from config() so
        that what is checked can be seen)."""
        return dict(server_name=self.server_name_for(url), ca_string=self.ca,
                    own_cert_string=self.cert, own_key_string=self.key,
                    auth_mode=(pynng.TLSConfig.AUTH_MODE_REQUIRED if self.ca
                               else pynng.TLSConfig.AUTH_MODE_NONE))

    def config(self, url: str) -> pynng.TLSConfig:
        """A new client TLS configuration for url."""
        if self.ca is None:
            log.warning("no TLS CA given: the server's certificate of %s is not verified", url)
        return self._config(url)

    def _config(self, url: Optional[str]) -> pynng.TLSConfig:
        """The configuration of settings(url); without url, no server name.
        nng's refusal of a file is a ValueError naming it."""
        settings = self.settings(url or "")
        config = pynng.TLSConfig(pynng.TLSConfig.MODE_CLIENT)
        if url is not None and settings["server_name"]:
            config.set_server_name(settings["server_name"])
        if self.ca:
            self._apply(config.set_ca_chain, (self.ca,),
                        "tls_ca file %s: not a certificate nng can use" % self.paths["tls_ca"])
        if self.cert:
            self._apply(config.set_own_cert, (self.cert, self.key),
                        "tls_key file %s: not a private key nng can use" % self.paths["tls_key"])
        # Set even when AUTH_MODE_NONE (0): nng's default is required, and
        # the client would never connect.
        config.set_auth_mode(settings["auth_mode"])
        return config

    @staticmethod
    def _apply(setter, args, what: str) -> None:
        try:
            setter(*args)
        except pynng.NNGException as e:
            raise ValueError("%s (%s)" % (what, e)) from None


# The estimate of decode_cost_ok, in bytes: a message takes _MSG_BYTES and
# _FIELD_BYTES for each field of its type (its struct, in the protobuf
# runtime's arena), an element of a repeated field _SLOT_BYTES more (its
# slot, the array's growth included), a string, bytes or unknown field its
# length, a packed varint _SLOT_BYTES / 2 per byte. A message without
# message fields is not walked: its bytes are charged 1 each, or
# _SLOT_BYTES / 2 each when it has repeated fields. The densest answer the
# service gives (top_k 1000 at FULL, 100 skills per match) is estimated at
# 5.5 times its bytes, a run of empty matches at 72 times (the runtime takes
# 56 times).
_MSG_BYTES = 16
_FIELD_BYTES = 16
_SLOT_BYTES = 16
_MAX_DEPTH = 100  # the protobuf runtime's nesting limit
_VARINT_TYPES = frozenset({
    FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT32,
    FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_BOOL, FieldDescriptor.TYPE_ENUM})
# descriptor -> (own cost, cost per byte when not walked (None: walked),
# {field number: (message type or None, repeated, varint)})
_tables: Dict[Any, Tuple[int, Optional[int], Dict[int, Tuple[Any, bool, bool]]]] = {}
_worst: Dict[Any, int] = {}  # descriptor -> most any byte within it may cost


class _OverBudget(Exception):
    pass


class OutOfTime(Exception):
    """decode_cost_ok did not finish its walk by the time it was given."""


#: How many bytes of a message _walk goes through between two looks at the
#: clock: some tens of thousands of fields, a few milliseconds.
_CLOCK_BYTES = 1 << 16


def _repeated(f) -> bool:
    # is_repeated replaced label in protobuf 6.
    if hasattr(f, "is_repeated"):
        return f.is_repeated
    return f.label == FieldDescriptor.LABEL_REPEATED


def _table(desc):
    t = _tables.get(desc)
    if t is None:
        fields = {f.number: (f.message_type, _repeated(f), f.type in _VARINT_TYPES)
                  for f in desc.fields}
        per_byte = None
        if not any(m is not None for m, _, _ in fields.values()):
            per_byte = _SLOT_BYTES // 2 if any(r for _, r, _ in fields.values()) else 1
        t = (_MSG_BYTES + _FIELD_BYTES * len(desc.fields), per_byte, fields)
        _tables[desc] = t
    return t


def _worst_per_byte(desc) -> int:
    """The most one byte of a message of type desc may add to the estimate:
    a nested message of the costliest type reachable in two bytes (a tag
    and a zero length), or a repeated element."""
    w = _worst.get(desc)
    if w is None:
        w, seen, todo = _SLOT_BYTES // 2, {desc}, [desc]
        while todo:
            for f in todo.pop().fields:
                m = f.message_type
                if m is not None and m not in seen:
                    seen.add(m)
                    todo.append(m)
                    w = max(w, (_table(m)[0] + _SLOT_BYTES + 1) // 2)
        _worst[desc] = w
    return w


def _varint(data: bytes, i: int, end: int) -> Tuple[int, int]:
    v = shift = 0
    while True:
        if i >= end or shift > 63:
            raise DecodeError("truncated varint")
        b = data[i]
        i += 1
        v |= (b & 0x7F) << shift
        if b < 0x80:
            return v, i
        shift += 7


def _walk(data: bytes, i: int, end: int, desc, left: int, depth: int,
          until: float) -> int:
    """left less the estimated cost of the message of type desc in
    data[i:end]; raises _OverBudget when it would go below 0, DecodeError
    for what the decoder refuses anyway, OutOfTime when time.monotonic()
    passes until (looked at every _CLOCK_BYTES)."""
    own, _, fields = _table(desc)
    left -= own
    look = i + _CLOCK_BYTES
    while i < end:
        if left < 0:
            raise _OverBudget
        if i >= look:
            if time.monotonic() > until:
                raise OutOfTime
            look = i + _CLOCK_BYTES
        key, i = _varint(data, i, end)
        f = fields.get(key >> 3)
        wt = key & 7
        if wt == 0:
            _, i = _varint(data, i, end)
        elif wt == 1:
            i += 8
        elif wt == 5:
            i += 4
        elif wt == 2:
            n, i = _varint(data, i, end)
            j = i + n
            if j > end:
                raise DecodeError("truncated field")
            if f is not None and f[0] is not None:
                sub_own, per_byte, _ = _table(f[0])
                if per_byte is not None:
                    left -= sub_own + per_byte * n
                elif depth >= _MAX_DEPTH:
                    raise DecodeError("nested too deeply")
                else:
                    left = _walk(data, i, j, f[0], left, depth + 1, until)
            elif f is not None and f[1] and f[2]:
                left -= n * (_SLOT_BYTES // 2)
            else:
                left -= n
            i = j
        elif wt == 3:  # a group, kept as raw bytes: at most the rest
            left -= end - i
            i = end
        else:
            raise DecodeError("bad wire type %d" % wt)
        if f is not None and f[1]:
            left -= _SLOT_BYTES
    if i > end:
        raise DecodeError("truncated field")
    if left < 0:
        raise _OverBudget
    return left


def decode_cost_ok(desc, data: bytes, until: float = math.inf) -> Tuple[bool, int]:
    """Whether data, a message of type desc, decodes within DECODE_FLOOR +
    DECODE_FACTOR * len(data) bytes of memory by the estimate above, and
    that limit. Not walked when even its costliest bytes would fit; data
    the decoder refuses is left to it (True). The walk takes about a
    microsecond per field, seconds for tens of MiB of small fields, many
    times what decoding takes: it raises OutOfTime once time.monotonic()
    is past until."""
    limit = DECODE_FLOOR + DECODE_FACTOR * len(data)
    if _table(desc)[0] + _worst_per_byte(desc) * len(data) <= limit:
        return True, limit
    try:
        _walk(data, 0, len(data), desc, limit, 0, until)
    except _OverBudget:
        return False, limit
    except DecodeError:
        pass
    return True, limit


#: The wire type of each field type but the varint ones (0).
_WIRE_TYPES = {
    FieldDescriptor.TYPE_STRING: 2, FieldDescriptor.TYPE_BYTES: 2,
    FieldDescriptor.TYPE_MESSAGE: 2, FieldDescriptor.TYPE_DOUBLE: 1,
    FieldDescriptor.TYPE_FIXED64: 1, FieldDescriptor.TYPE_SFIXED64: 1,
    FieldDescriptor.TYPE_FLOAT: 5, FieldDescriptor.TYPE_FIXED32: 5,
    FieldDescriptor.TYPE_SFIXED32: 5}
_INT32_MAX = (1 << 31) - 1
#: The smallest varint of a negative int32: sign-extended to 64 bits.
_INT32_MIN_VARINT = (1 << 64) - (1 << 31)
_MAX_FIELD_NUMBER = (1 << 29) - 1


def envelope_fault(data: bytes, until: float = math.inf) -> Optional[str]:
    """Why data, an RpcResponse the protobuf runtime decoded, is to be
    refused all the same, as the C client's decoder (lm_pb_decode) refuses
    it: a field number that is none, a wire type of groups, a known field
    on the wire with another type than its own (the runtime keeps it as an
    unknown field: a code sent so read as OK), an enum (the code) outside
    the int32 range (the runtime keeps its low 32 bits: 2^32 + 14 would be
    read as UNAVAILABLE), a string (request_id, message) holding a NUL
    byte; None when there is nothing to refuse. The envelope's own fields
    only: the payload is skipped, and checked by its decoder alone
    (walking every string of a large answer would take many times its
    decoding). A few fields in practice; raises OutOfTime once
    time.monotonic() is past until (looked at every _CLOCK_BYTES) for a
    run of fields a broken or hostile server could send."""
    desc = rpc_pb2.RpcResponse.DESCRIPTOR
    i, end, look = 0, len(data), _CLOCK_BYTES
    while i < end:
        if i >= look:
            if time.monotonic() > until:
                raise OutOfTime
            look = i + _CLOCK_BYTES
        key, i = _varint(data, i, end)
        number, wt = key >> 3, key & 7
        if number == 0 or number > _MAX_FIELD_NUMBER:
            return "invalid field number %d" % number
        if wt not in (0, 1, 2, 5):
            return "unsupported wire type %d" % wt
        start = i
        if wt == 0:
            value, i = _varint(data, i, end)
        elif wt == 2:
            n, start = _varint(data, i, end)
            i = start + n
        else:
            i += 8 if wt == 1 else 4
        f = desc.fields_by_number.get(number)
        if f is None:
            continue
        if _WIRE_TYPES.get(f.type, 0) != wt:  # RpcResponse has no packed field
            return "wire type %d for field %s" % (wt, f.name)
        if f.type == FieldDescriptor.TYPE_ENUM and _INT32_MAX < value < _INT32_MIN_VARINT:
            return "%s %d outside the int32 range" % (f.name, value)
        if f.type == FieldDescriptor.TYPE_STRING and data.find(b"\0", start, i) >= 0:
            return "%s holds a NUL byte" % f.name
    return None


def _metadata(md) -> List[rpc_pb2.MetadataEntry]:
    if not md:
        return []
    items = md.items() if isinstance(md, Mapping) else md
    return [rpc_pb2.MetadataEntry(key=k, value=v) for k, v in items]


class Call:
    """The state of one call across its attempts. The clients loop:
    ``pick()`` an endpoint (None: none connected yet; wait and look again
    unless ``give_up()`` raises); on a Flight of it, send ``envelope()``
    within ``send_ms()`` (``not_sent()`` when no connection took it: returns
    to retry, or raises), then wait for the answer at most ``wait_ms()``,
    both read just then; then, still on the Flight, ``answer()`` with the
    message (a result, None to retry, or an exception: an UNAVAILABLE
    answer marks its connection while the call is in flight on it, so that
    no other call starts there as it leaves), ``connection_lost()`` when
    the connection broke first (returns to retry, or raises), or raise
    ``no_answer()`` when the answer did not come in time.

    Which outcomes allow another attempt follows the C client
    (common/src/client.c): a request no connection took never left the
    client, so a call of any method moves on (not_sent, give_up); a
    request that was sent may have been carried out, so only an idempotent
    call goes on after an UNAVAILABLE answer or a lost connection (_resend).

    A server's UNAVAILABLE answer has the connection it came on closed, so
    that nng dials that endpoint afresh: a draining replica keeps its
    connections until it exits, and an address in front of several replicas
    sends a new connection to a ready one, sparing the other calls in
    flight on it for a grace (Pool.unavailable). With a single endpoint the
    call is then sent again on the new connection (SINGLE_REDIALS,
    REDIAL_WAIT), as after a lost connection."""

    def __init__(self, pool: Pool, method: str, request, unwrap: Optional[str],
                 timeout: float):
        short = method[len(METHOD_PREFIX):] if method.startswith(METHOD_PREFIX) else method
        if (not RPC_NAME.fullmatch(short)
                or len(METHOD_PREFIX) + len(short) > MAX_METHOD_BYTES):
            raise errors.InvalidArgument(
                "bad method name %r: an rpc name of letters, digits and '_', at most %d "
                "characters, alone or after %s" % (
                    method, MAX_METHOD_BYTES - len(METHOD_PREFIX), METHOD_PREFIX),
                method=method, local=True)
        self.method = METHOD_PREFIX + short
        types = METHODS.get(short)
        self.response_type = types[1] if types else None
        if isinstance(request, Message):
            payload = request.SerializeToString()
        else:
            try:
                payload = memoryview(request).tobytes()
            except TypeError:
                raise TypeError("request: expected a message or bytes, not %s"
                                % type(request).__name__) from None
        self.pool = pool
        self.unwrap = unwrap
        self.request_id = uuid.uuid4().hex
        self.idempotent = short in IDEMPOTENT
        self.deadline = time.monotonic() + timeout
        self.timeout = timeout
        self.first = pool.start()
        self.tried: List[int] = []     # the endpoints of this round, by index
        self.attempts: List[str] = []  # every attempt's endpoint, in order
        self.last: Optional[errors.RpcError] = None
        self.env = rpc_pb2.RpcRequest(method=self.method, request_id=self.request_id,
                                      payload=payload)
        self.url: Optional[str] = None
        self.j: Optional[int] = None  # the endpoint of the current attempt
        self.redials = 0
        self.lost: set = set()  # the endpoints (indices) whose connection the call lost
        self.since = 0  # pool.losses(j) when pick() found the current endpoint j up
        self.redial_until: Optional[float] = None  # waiting for a fresh connection
        self.pause = 0.0                          # the last pause between rounds
        self.round_at: Optional[float] = None     # when the next round may start
        self.waiting_since: Optional[float] = None  # no endpoint left connected

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def pick(self) -> Optional[int]:
        """The index of the next untried endpoint that has a connection
        that takes calls, in rotating order, the call then in flight on it
        (Pool.board: the caller runs a Flight of it next); None when none
        has one now or the pause before the next round is not over. Raises
        closed() once the client is closed."""
        if self.pool.closed:
            raise self.closed()
        now = time.monotonic()
        if self.round_at is not None and now < self.round_at:
            return None
        n = len(self.pool.urls)
        for i in range(n):
            j = (self.first + i) % n
            url = self.pool.urls[j]
            if j in self.tried:
                continue
            if n > 1 and j in self.lost:  # not again in this call
                self.tried.append(j)
                continue
            since = self.pool.board(j)
            if since is not None:
                self.since = since
                self.j = j
                self.url = url
                self.tried.append(j)
                self.attempts.append(url)
                self.waiting_since = None
                return j
        if self.waiting_since is None:
            self.waiting_since = now
        return None

    def _remember(self, err: errors.RpcError) -> None:
        """Keeps err as the result should nothing better come; a server's
        answer is not replaced by a local error (a lost connection)."""
        if self.last is None or self.last.local or not err.local:
            self.last = err

    def _result(self, err: Optional[errors.RpcError] = None) -> errors.RpcError:
        """The error a call ends with after err (None: the one kept): a
        server's answer, if one came, rather than a local error; its
        attempts are every attempt of the call."""
        out = err
        if out is None or (out.local and self.last is not None and not self.last.local):
            out = self.last
        out.attempts = list(self.attempts)
        return out

    def _resend(self, err: errors.RpcError) -> bool:
        """After err, an attempt whose request was sent (a server's answer,
        a lost connection): whether the call goes on, to another endpoint
        (_next) or on a fresh connection (_redial). Only an idempotent call
        may: the server may have carried the request out."""
        return self.idempotent and (self._redial(err) or self._next(err))

    def _redial(self, err: errors.RpcError) -> bool:
        """With a single endpoint: arranges for the call to be sent again on
        the next connection, unless it is out of time or out of repeats."""
        if (len(self.pool.urls) != 1 or self.remaining() <= 0
                or self.redials >= SINGLE_REDIALS):
            return False
        self.redials += 1
        self.tried.clear()
        self.redial_until = time.monotonic() + REDIAL_WAIT
        self._remember(err)
        return True

    def _next(self, err: errors.RpcError) -> bool:
        """With several endpoints: whether the call goes on after err, to an
        endpoint not tried in this round or, once every one was, to another
        round after its pause (ROUND_PAUSE_MIN doubling up to
        ROUND_PAUSE_MAX) when that pause ends before the deadline. After a
        request that was sent, only through _resend."""
        n = len(self.pool.urls)
        if n == 1 or self.remaining() <= 0:
            return False
        if len(self.tried) < n:
            self._remember(err)
            return True
        pause = min(max(2 * self.pause, ROUND_PAUSE_MIN), ROUND_PAUSE_MAX)
        if pause >= self.remaining():
            return False
        self.pause = pause
        self.round_at = time.monotonic() + pause
        self.waiting_since = None
        self.tried.clear()
        self._remember(err)
        return True

    def connection_lost(self) -> None:
        """The connection of the current attempt broke before the answer
        (nng fails the request with ECONNRESET). An idempotent call with an
        endpoint left to try moves on, a single endpoint's to its next
        connection (give_up raises this error when none gets it further),
        once: nng also drops a message over a size limit with its
        connection, which would happen again, so an endpoint is not tried
        again in the call once it lost a connection (a single endpoint's
        fresh connection, which may reach another replica, gets the call
        once). Otherwise raises a server's earlier answer, if one came, or
        a local Unavailable."""
        err = self._error(errors.Unavailable, (
            "connection to %s lost before the answer (a request over the "
            "server's size limit, or an answer over max_response_bytes, "
            "closes it too)") % self.url)
        first = self.j not in self.lost
        self.lost.add(self.j)
        again = first if len(self.pool.urls) == 1 else len(self.lost) < len(self.pool.urls)
        if not (again and self._resend(err)):
            raise self._result(err)

    def not_sent(self) -> None:
        """No connection took the request within send_ms(), or the one it
        waited for went: the request never left the client. As for an
        endpoint without a connection, the attempt is not listed and the
        call, whatever its method, moves to another endpoint, or raises the
        error of an earlier attempt (a server's answer, a lost connection),
        else a local Unavailable."""
        self.attempts.pop()
        err = self._error(errors.Unavailable, "no connection to %s" % self.url)
        if not self._next(err):
            raise self._result(err if self.last is None else None)

    def give_up(self) -> None:
        """Raises when waiting for a connection is over: the deadline passed,
        every endpoint was tried, or (several endpoints, after an attempt)
        those left had no connection for ATTEMPT_CONNECT and no other round
        fits in the deadline. The error is a server's answer if one came,
        else the last local one, else a local Unavailable; once the client
        is closed, closed()."""
        if self.pool.closed:
            raise self.closed()
        now = time.monotonic()
        if (len(self.pool.urls) > 1 and self.last is not None
                and self.waiting_since is not None
                and now - self.waiting_since >= ATTEMPT_CONNECT):
            # The endpoints left in this round have no connection: they
            # count as tried, and the round ends.
            self.tried.extend(j for j in range(len(self.pool.urls)) if j not in self.tried)
            self.waiting_since = None
            if self._next(self.last):
                return
            raise self._result()
        waited_out = self.redial_until is not None and now >= self.redial_until
        if self.remaining() > 0 and len(self.tried) < len(self.pool.urls) and not waited_out:
            return
        if self.last is not None:
            raise self._result()
        raise self._error(errors.Unavailable,
                          "no connection to %s within %d ms" % (
                              ", ".join(u for j, u in enumerate(self.pool.urls)
                                        if j not in self.tried),
                              round(self.timeout * 1000)))

    def envelope(self) -> bytes:
        """The request, carrying the time left now: built once the attempt's
        endpoint has a connection, as the C client does, so that the
        server's deadline does not outlast the caller's by the wait."""
        ms = max(1, math.ceil(self.remaining() * 1000))
        self.env.timeout_ms = min(ms, MAX_TIMEOUT_MS)
        return self.env.SerializeToString()

    def wait_ms(self) -> int:
        """How long the answer is waited for, from now: the time left and
        the grace."""
        return max(1, math.ceil((self.remaining() + DEADLINE_GRACE) * 1000))

    def send_ms(self) -> int:
        """How long the request may wait for a connection to take it: the
        time left, at most what is left of a wait for a fresh connection."""
        end = self.deadline
        if self.redial_until is not None:
            end = min(end, self.redial_until)
        return max(1, math.ceil((end - time.monotonic()) * 1000))

    def closed(self) -> errors.RpcError:
        """The error of a call whose client was closed while it was in
        flight, waiting for a connection (pick, give_up) or on one (nng
        reports its sockets closed): a local Cancelled, as the caller ended
        it."""
        return self._error(errors.Cancelled, "the client was closed during the call")

    def no_answer(self) -> errors.RpcError:
        return self._error(errors.DeadlineExceeded, "no answer from %s within %d ms" % (
            self.url, round(self.timeout * 1000)))

    def answer(self, msg: pynng.Message):
        """The call's result from answer msg, decoded here (decode, then
        settle): the response, None when the call is to go on (retry), or
        raises the answer's error."""
        return self.settle(msg, *self.decode(msg.bytes))

    def decode(self, raw: bytes) -> Tuple[rpc_pb2.RpcResponse, Any]:
        """The envelope (an RpcResponse) of answer raw, and the call's
        result when the answer carries one (OK, for this request): the
        payload as response_type, or its bytes when the method has no known
        type; else None. Raises the local errors of an answer that cannot
        be checked in time, costs too much to decode (_within_budget), does
        not decode, or holds what the C client refuses (envelope_fault:
        a code outside int32, a NUL byte in a string). Reads the call and changes nothing in it or its
        pool, so that it may run on another thread while the call waits
        (the asyncio client does so for a large answer)."""
        if len(raw) > self.pool.max_response_bytes:
            raise self._error(errors.Internal, (
                "answer from %s refused: %d bytes exceed the limit of %d bytes "
                "(max_response_bytes)") % (self.url, len(raw), self.pool.max_response_bytes))
        self._within_budget(rpc_pb2.RpcResponse, raw)
        try:
            resp = rpc_pb2.RpcResponse.FromString(raw)
        except DecodeError as e:
            raise self._error(errors.Internal, "unreadable answer from %s: %s" % (self.url, e))
        try:
            fault = envelope_fault(raw, self.deadline + DEADLINE_GRACE)
        except DecodeError as e:  # what the runtime took and the C client would not
            fault = str(e)
        except OutOfTime:
            raise self._error(errors.DeadlineExceeded, (
                "answer from %s not checked within %d ms: %d bytes of %s") % (
                    self.url, round(self.timeout * 1000), len(raw),
                    rpc_pb2.RpcResponse.DESCRIPTOR.full_name)) from None
        if fault is not None:
            raise self._error(errors.Internal, "unreadable answer from %s: %s" % (
                self.url, fault))
        if resp.request_id != self.request_id or resp.code != rpc_pb2.OK:
            return resp, None
        if self.response_type is None:
            return resp, resp.payload
        self._within_budget(self.response_type, resp.payload)
        try:
            out = self.response_type.FromString(resp.payload)
        except DecodeError as e:
            raise self._error(errors.Internal, "unreadable %s from %s: %s" % (
                self.response_type.__name__, self.url, e))
        return resp, out

    def settle(self, msg: pynng.Message, resp, out):
        """The call's result from answer msg, which decode() made into its
        envelope resp and result out: out (unwrapped: its field named
        unwrap), None when the call is to go on (an UNAVAILABLE answer of a
        call that may be sent again), or raises the answer's error; an OK
        answer without the field unwrap names (a GetPosting answer without
        its posting) is a local Internal, not an empty record."""
        if resp.request_id != self.request_id:
            # The server echoes "" when it could not read our envelope.
            if resp.request_id != "" or resp.code == rpc_pb2.OK:
                raise self._error(errors.Internal, "answer from %s is for request %r" % (
                    self.url, resp.request_id))
        if resp.code != rpc_pb2.OK:
            err = errors.error_for(resp.code, resp.message, method=self.method,
                                   request_id=self.request_id, endpoint=self.url,
                                   attempts=self.attempts)
            if resp.code == rpc_pb2.UNAVAILABLE:
                # This server will not serve this connection: no call
                # starts on it from now on, and it is closed once the
                # other calls on it have their answers, or their grace
                # is over.
                self.pool.unavailable(self.j, lib.nng_msg_get_pipe(msg._nng_msg))
            if resp.code in RETRY_CODES and self._resend(err):
                return None
            raise err
        if self.response_type is None or not self.unwrap:
            return out
        if not out.HasField(self.unwrap):
            raise self._error(errors.Internal, "OK answer from %s without its %s" % (
                self.url, self.unwrap))
        return getattr(out, self.unwrap)

    def _within_budget(self, cls: type, data: bytes) -> None:
        """Raises a local Internal when data, a cls, would take more memory
        to decode than its budget (decode_cost_ok); a local
        DeadlineExceeded when that check is not done by the time the answer
        was waited for (the deadline and its grace)."""
        try:
            ok, limit = decode_cost_ok(cls.DESCRIPTOR, data, self.deadline + DEADLINE_GRACE)
        except OutOfTime:
            raise self._error(errors.DeadlineExceeded, (
                "answer from %s not checked within %d ms: %d bytes of %s") % (
                    self.url, round(self.timeout * 1000), len(data),
                    cls.DESCRIPTOR.full_name)) from None
        if not ok:
            raise self._error(errors.Internal, (
                "answer from %s refused: %d bytes of %s would take more than %d "
                "bytes of memory to decode") % (self.url, len(data), cls.DESCRIPTOR.full_name,
                                                 limit))

    def _error(self, cls, message):
        return cls(message, method=self.method, request_id=self.request_id,
                   endpoint=self.url, local=True, attempts=self.attempts)


class ClientBase(Methods):
    """Construction and closing, shared by both clients.

    endpoints: a URL, a comma-separated list or a sequence (default
    LUNAMATCH_RPC_URL, else tcp://127.0.0.1:7700), at most 16
    (MAX_ENDPOINTS) and 4096 bytes in all (MAX_ENDPOINT_LIST_BYTES), else
    ValueError; every endpoint is dialled
    at once and kept connected; a URL nng cannot dial, or a tcp:// or
    tls+tcp:// URL whose port is neither a number from 1 to 65535 nor a
    service name the system knows, raises ValueError. timeout: default call timeout in seconds
    (at most 10 minutes: longer is cut to that, as the server does), a
    real number (int or float; not a bool), else TypeError, positive and
    finite, else ValueError.
    tls_ca / tls_cert / tls_key (PEM files of at most 1 MiB, not empty,
    UTF-8 text holding a certificate or private key block nng can use, else
    ValueError naming the file) and tls_server_name: for
    tls+tcp:// endpoints, and read only when there is one (given with
    another endpoint, a warning names it, as in the C client); with tls_ca the server's certificate must carry
    tls_server_name, by default the host of each endpoint's URL; without it
    the server is not verified (a warning is logged).
    max_response_bytes: the largest answer taken (0 or default: 64 MiB, as
    in the C client); an int (not a bool or a float), else TypeError; from
    0 to MAX_RESPONSE_BYTES_CEILING (1 GiB, as in the C client), else
    ValueError.
    max_request_bytes: the largest request sent (0 or default: 1 MiB,
    lunamatch-match's default limit, as in the C client; set it to the
    servers' LUNAMATCH_MAX_REQUEST_BYTES when that is raised): a call with
    a larger one raises a local InvalidArgument before anything is sent; an
    int (not a bool or a float), else TypeError; from 0 to 64 MiB, the
    largest limit a server can be given, else ValueError.
    caller: the calling service's name, a str (else TypeError; None or ""
    for none) of at most 1024 bytes in UTF-8 with no NUL character (else
    ValueError), sent
    with every call as the "caller" metadata entry, which the server's
    decision log records; a call's own "caller" entry is sent instead. It
    is one of the MAX_METADATA (32) entries a call may send.
    """

    def __init__(self, endpoints=None, *, timeout: float = DEFAULT_TIMEOUT,
                 tls_ca: Optional[str] = None, tls_cert: Optional[str] = None,
                 tls_key: Optional[str] = None, tls_server_name: Optional[str] = None,
                 max_response_bytes: int = MAX_RESPONSE_BYTES,
                 max_request_bytes: int = MAX_REQUEST_BYTES,
                 caller: Optional[str] = None):
        if caller is not None and not isinstance(caller, str):
            raise TypeError("caller must be a str, not %s" % type(caller).__name__)
        try:
            caller_bytes = len(caller.encode()) if caller else 0
        except UnicodeEncodeError:
            raise ValueError("caller is not valid Unicode text (a lone surrogate)") from None
        if caller_bytes > MAX_METADATA_VALUE:
            raise ValueError("caller is over %d bytes" % MAX_METADATA_VALUE)
        if caller and "\0" in caller:
            # The server refuses strings with a NUL: every call would fail.
            raise ValueError("caller holds a NUL character")
        max_request_bytes = _byte_count("max_request_bytes", max_request_bytes,
                                        MAX_REQUEST_BYTES_CEILING)
        max_response_bytes = _byte_count("max_response_bytes", max_response_bytes,
                                         MAX_RESPONSE_BYTES_CEILING)
        self.timeout = checked_timeout(timeout)
        self.max_request_bytes = max_request_bytes or MAX_REQUEST_BYTES
        self.caller = caller or None
        urls = endpoint_list(endpoints)
        self._tls = TLSOptions(tls_ca, tls_cert, tls_key, tls_server_name, urls)
        self._pool = Pool(urls, self._tls.config, max_response_bytes or MAX_RESPONSE_BYTES)

    @property
    def endpoints(self) -> List[str]:
        return list(self._pool.urls)

    def connected(self) -> List[str]:
        """The endpoints that have a connection now."""
        return [u for j, u in enumerate(self._pool.urls) if self._pool.connected(j)]

    def _call(self, method, request, unwrap, timeout, metadata) -> Call:
        if self._pool.closed:
            raise RuntimeError("client is closed")
        t = self.timeout if timeout is None else checked_timeout(timeout)
        c = Call(self._pool, method, request, unwrap, t)
        md = _metadata(metadata)
        added = self.caller and not any(m.key == CALLER_KEY for m in md)
        if added:
            md.insert(0, rpc_pb2.MetadataEntry(key=CALLER_KEY, value=self.caller))
        if len(md) > MAX_METADATA:
            raise ValueError("%d metadata entries: at most %d%s" % (
                len(md), MAX_METADATA,
                " (the client's caller entry is one of them)" if added else ""))
        c.env.metadata.extend(md)
        # timeout_ms, set when sent, takes at most 4 bytes.
        size = c.env.ByteSize() + 4
        if size > self.max_request_bytes:
            raise errors.InvalidArgument(
                "request of %d bytes over the client's limit of %d (max_request_bytes)"
                % (size, self.max_request_bytes), method=c.method,
                request_id=c.request_id, local=True)
        return c

    def close(self) -> None:
        """Closes the client: calls in flight (on a connection, or still
        waiting for one) fail at once with a local Cancelled, later ones
        raise RuntimeError. Idempotent; may come from any thread. No call
        enters an nng function with a socket's context once the client is
        closed (an nng operation on a context that overlaps the close of
        its socket can hang or abort the process), and the sockets are
        closed once the calls of other threads inside one have come out,
        microseconds, which close() waits for at most CLOSE_WAIT (5)
        seconds (should that run out, close() returns and the last of them
        closes the sockets as it comes out). The calls themselves are not
        waited for (one decoding an answer, a task of a stopped event
        loop). close() returns once the sockets are closed, a second
        close() while the first one waits too (see Pool.close)."""
        self._pool.close()

    def __del__(self):
        """A client dropped without close() closes its sockets here, with a
        ResourceWarning. Left to them, pynng's sockets (each refers to
        itself) would be closed by the cycle collector, which runs in
        whatever thread allocates: in one of nng's own threads (a pipe
        callback, an operation's completion), nng_close waits for work
        queued on that very thread and every socket of the process hangs.
        For the same reason a client collected in a thread Python did not
        start is closed from a new thread."""
        pool = getattr(self, "_pool", None)
        if pool is None or pool.closed:
            return
        urls = ",".join(pool.urls)
        closed = False
        if isinstance(threading.current_thread(), threading._DummyThread):
            try:
                threading.Thread(target=pool.close, name="lunamatch-close",
                                 daemon=True).start()
                closed = True
            except RuntimeError:  # interpreter shutdown: no new threads
                pass
        if not closed:
            pool.close()
        warnings.warn("unclosed lunamatch client of %s" % urls, ResourceWarning, source=self)


