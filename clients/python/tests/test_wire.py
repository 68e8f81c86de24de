"""What the client puts on the wire, and what it does with answers that the
real server never sends (a foreign request_id, bytes that are not an
RpcResponse). The peer is a plain nng REP socket on 127.0.0.1 that records
the request and sends back the bytes a test chooses; every behaviour that
the real server can show is tested against lunamatch-match instead."""
import asyncio
import contextlib
import functools
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pynng
import pytest

import lunamatch
from lunamatch import _rpc, aio
from lunamatch.v1 import match_pb2, rpc_pb2

from conftest import REPO, connected, free_port, wait_for


#: A reply that closes the request's connection instead of answering.
DROP = object()


class Peer:
    """A REP socket that answers each request with reply(request) (None:
    no answer; DROP: close the connection) and keeps the decoded requests."""

    def __init__(self, reply):
        self.url = "tcp://127.0.0.1:%d" % free_port()
        self.sock = pynng.Rep0(listen=self.url, recv_timeout=5000)
        self.requests = []
        self.reply = reply
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                msg = self.sock.recv_msg()
            except (pynng.Timeout, pynng.Closed):
                return
            req = rpc_pb2.RpcRequest.FromString(msg.bytes)
            self.requests.append(req)
            out = self.reply(req)
            if out is DROP:
                pynng.lib.nng_pipe_close(msg.pipe.pipe)
            elif out is not None:
                try:
                    self.sock.send(out)
                except pynng.Closed:
                    return

    def close(self):
        self.sock.close()
        self.thread.join(5)


@pytest.fixture
def peer_factory():
    peers = []

    def make(reply):
        p = Peer(reply)
        peers.append(p)
        return p

    yield make
    for p in peers:
        p.close()


def ok(req, msg):
    return rpc_pb2.RpcResponse(request_id=req.request_id,
                               payload=msg.SerializeToString()).SerializeToString()


#: An OK GetPosting answer (one without its posting is an error).
A_POSTING = match_pb2.GetPostingResponse(posting={"id": "job-1"})


def test_envelope_fields(peer_factory):
    p = peer_factory(lambda req: ok(req, A_POSTING))
    with lunamatch.Client(p.url, timeout=2.0) as c:
        # Connected first: the time a first call waits for the connection
        # comes off its deadline.
        deadline = time.monotonic() + 5
        while len(c.connected()) < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        c.get_posting("job-1", metadata={"x-trace-id": "t1"})
        c.get_posting("job-2", timeout=0.5)
    a, b = p.requests
    assert a.method == "/lunamatch.v1.MatchService/GetPosting"
    assert match_pb2.GetPostingRequest.FromString(a.payload).id == "job-1"
    assert [(m.key, m.value) for m in a.metadata] == [("x-trace-id", "t1")]
    assert len(a.request_id) == 32 and a.request_id != b.request_id
    # timeout_ms is the time left of the call's deadline.
    assert 1500 <= a.timeout_ms <= 2000
    assert 300 <= b.timeout_ms <= 500


def test_retry_reuses_request_id_with_the_time_left(peer_factory):
    def unavailable(req):
        return rpc_pb2.RpcResponse(request_id=req.request_id, code=rpc_pb2.UNAVAILABLE,
                                   message="draining").SerializeToString()

    first = peer_factory(unavailable)
    second = peer_factory(lambda req: ok(req, match_pb2.HealthCheckResponse(status=1)))
    with lunamatch.Client([first.url, second.url], timeout=2.0) as c:
        deadline = time.monotonic() + 5
        while len(c.connected()) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert c.check().status == 1
    (a,), (b,) = first.requests, second.requests
    assert a.request_id == b.request_id and b.timeout_ms <= a.timeout_ms


@pytest.mark.parametrize("code, retried", [
    (rpc_pb2.UNAVAILABLE, True),
    (rpc_pb2.RESOURCE_EXHAUSTED, False),
    (rpc_pb2.DEADLINE_EXCEEDED, False),
    (rpc_pb2.INTERNAL, False),
    (rpc_pb2.NOT_FOUND, False),
])
def test_retry_decision(peer_factory, code, retried):
    """Only UNAVAILABLE moves a call to another endpoint, as in the C
    client; any other answer is the result."""
    first = peer_factory(lambda req: rpc_pb2.RpcResponse(
        request_id=req.request_id, code=code, message="no").SerializeToString())
    second = peer_factory(lambda req: ok(req, match_pb2.HealthCheckResponse(status=1)))
    with lunamatch.Client([first.url, second.url], timeout=2.0) as c:
        deadline = time.monotonic() + 5
        while len(c.connected()) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        if retried:
            assert c.check().status == 1
        else:
            with pytest.raises(lunamatch.ERRORS[code]) as e:
                c.check()
            assert not e.value.local and e.value.attempts == [first.url]
    assert len(first.requests) == 1
    assert len(second.requests) == (1 if retried else 0)


def test_all_endpoints_unavailable(peer_factory):
    """Every replica loading: the call goes round them again after pauses
    that double from 50 ms (50, 100, 200, 400, 800 ms; the next, 1 s, would
    pass the 2 s deadline), as the C client does: at most six rounds, and
    the last answer is the result."""
    def unavailable(req):
        return rpc_pb2.RpcResponse(request_id=req.request_id, code=rpc_pb2.UNAVAILABLE,
                                   message="index is loading").SerializeToString()

    peers = [peer_factory(unavailable) for _ in range(2)]
    with lunamatch.Client([p.url for p in peers], timeout=2.0) as c:
        deadline = time.monotonic() + 5
        while len(c.connected()) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        with pytest.raises(lunamatch.Unavailable) as e:
            c.check()
    assert not e.value.local and e.value.message == "index is loading"
    asked = [len(p.requests) for p in peers]
    assert all(n >= 2 for n in asked) and sum(asked) <= 12, asked
    assert len(e.value.attempts) == sum(asked)


def loading_until(ready_at):
    """A reply: UNAVAILABLE until ready_at[0] (monotonic), then serving."""
    def reply(req):
        if time.monotonic() < ready_at[0]:
            return rpc_pb2.RpcResponse(request_id=req.request_id,
                                       code=rpc_pb2.UNAVAILABLE,
                                       message="index is loading").SerializeToString()
        return ok(req, match_pb2.HealthCheckResponse(status=1))
    return reply


def test_replica_ready_in_a_later_round(peer_factory):
    """Both replicas loading at first: the call that found both
    UNAVAILABLE goes round again and is answered once one is ready."""
    ready_at = [float("inf")]
    peers = [peer_factory(loading_until(ready_at)) for _ in range(2)]
    with lunamatch.Client([p.url for p in peers], timeout=5.0) as c:
        deadline = time.monotonic() + 5
        while len(c.connected()) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        ready_at[0] = time.monotonic() + 0.3
        assert c.check().status == 1
    assert sum(len(p.requests) for p in peers) >= 3


def test_dead_endpoint_does_not_end_the_rounds(peer_factory):
    """One replica loading, the other endpoint down: as with the C client,
    the endpoint without a connection counts as tried after 250 ms, and the
    next round asks the loading replica again, which answers once ready."""
    ready_at = [float("inf")]
    loading = peer_factory(loading_until(ready_at))
    dead = "tcp://127.0.0.1:%d" % free_port()
    with lunamatch.Client([loading.url, dead], timeout=3.0) as c:
        deadline = time.monotonic() + 5
        while len(c.connected()) < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        ready_at[0] = time.monotonic() + 0.3
        t = time.monotonic()
        assert c.check().status == 1
        took = time.monotonic() - t
    assert len(loading.requests) >= 2
    assert took < 2.5  # answered in a later round, not at the deadline


def test_server_answer_beats_a_lost_connection(peer_factory):
    """A replica answers UNAVAILABLE, the other drops every connection: the
    call ends with the server's answer, not with the local loss, whichever
    endpoint it starts at (as the C client)."""
    def unavailable(req):
        return rpc_pb2.RpcResponse(request_id=req.request_id, code=rpc_pb2.UNAVAILABLE,
                                   message="index is loading").SerializeToString()

    answering = peer_factory(unavailable)
    dropping = peer_factory(lambda req: DROP)
    with lunamatch.Client([answering.url, dropping.url], timeout=0.5) as c:
        deadline = time.monotonic() + 5
        while len(c.connected()) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        for _ in range(4):
            before = len(answering.requests) + len(dropping.requests)
            with pytest.raises(lunamatch.Unavailable) as e:
                c.check()
            assert not e.value.local and e.value.message == "index is loading"
            # Every attempt is listed, the later lost ones included.
            assert len(e.value.attempts) == (
                len(answering.requests) + len(dropping.requests) - before)


@pytest.mark.parametrize("answer, text", [
    (lambda req: b"\xff\xff\xff\xff", "unreadable answer"),
    (lambda req: rpc_pb2.RpcResponse(request_id="someone-else").SerializeToString(),
     "for request 'someone-else'"),
    (lambda req: rpc_pb2.RpcResponse(request_id=req.request_id,
                                     payload=b"\xff\xff").SerializeToString(),
     "unreadable HealthCheckResponse"),
])
def test_bad_answers_are_local_internal_errors(peer_factory, answer, text):
    p = peer_factory(answer)
    with lunamatch.Client(p.url, timeout=1.0) as c:
        with pytest.raises(lunamatch.Internal) as e:
            c.check()
    assert e.value.local and text in e.value.message


def varint(v):
    """v as a varint on the wire (a negative one sign-extended to 64 bits)."""
    v &= (1 << 64) - 1
    out = b""
    while v >= 0x80:
        out += bytes([v & 0x7f | 0x80])
        v >>= 7
    return out + bytes([v])


def envelope(req, code=None, message=None, payload=None, request_id=None):
    """An RpcResponse written field by field: code a varint (any number),
    or bytes for a code sent as a length-delimited field."""
    rid = req.request_id.encode() if request_id is None else request_id
    out = field(1, rid)
    if isinstance(code, bytes):
        out += field(2, code)
    elif code is not None:
        out += b"\x10" + varint(code)
    if message is not None:
        out += field(3, message)
    if payload is not None:
        out += field(4, payload.SerializeToString())
    return out


SERVING = match_pb2.HealthCheckResponse(status=1)


@pytest.mark.parametrize("answer, text", [
    # 2^32 + 14: the runtime kept UNAVAILABLE and the call moved on.
    (lambda req: envelope(req, (1 << 32) + rpc_pb2.UNAVAILABLE, b"draining"),
     "code 4294967310 outside the int32 range"),
    # 2^32: OK, with the payload taken as the result.
    (lambda req: envelope(req, 1 << 32, payload=SERVING),
     "code 4294967296 outside the int32 range"),
    (lambda req: envelope(req, (1 << 63) + 5, b"no"), "outside the int32 range"),
    # A code sent as a string was an unknown field: OK.
    (lambda req: envelope(req, b"\x0e", payload=SERVING), "wire type 2 for field code"),
    (lambda req: envelope(req, rpc_pb2.NOT_FOUND, b"no\0such"), "message holds a NUL byte"),
    (lambda req: envelope(req, rpc_pb2.NOT_FOUND, b"no such",
                          request_id=req.request_id.encode() + b"\0"),
     "request_id holds a NUL byte"),
    (lambda req: envelope(req, rpc_pb2.UNAVAILABLE, b"draining") + b"\x2b\x2c",
     "unsupported wire type 3"),
])
@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "asyncio"])
def test_an_envelope_the_c_client_refuses_is_a_local_internal_error(peer_factory, monkeypatch,
                                                                      answer, text,
                                                                      asynchronous):
    """As in the C client, an answer whose envelope holds a status code
    outside the int32 range, a field of another wire type than its own, or
    a string with a NUL byte is unreadable: a local Internal, not retried.
    The protobuf runtime kept a code's low 32 bits and read a misplaced
    code as OK, and took the NUL."""
    bad = peer_factory(answer)
    good = peer_factory(lambda req: ok(req, SERVING))
    urls = [bad.url, good.url]
    monkeypatch.setattr(_rpc.Pool, "start", lambda self: 0)  # every call starts at bad

    async def check():
        async with lunamatch.AsyncClient(urls, timeout=2.0) as c:
            wait_for("both connected", lambda: len(c.connected()) == 2)
            return await c.check()

    def call():
        if asynchronous:
            return asyncio.run(check())
        with lunamatch.Client(urls, timeout=2.0) as c:
            wait_for("both connected", lambda: len(c.connected()) == 2)
            return c.check()

    with pytest.raises(lunamatch.Internal) as e:
        call()
    assert e.value.local and "unreadable answer" in e.value.message
    assert text in e.value.message
    assert len(bad.requests) == 1 and not good.requests


@pytest.mark.parametrize("method, empty", [
    ("get_posting", match_pb2.GetPostingResponse()),
    ("get_profile", match_pb2.GetProfileResponse()),
])
@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "asyncio"])
def test_an_ok_answer_without_its_record_is_a_local_internal_error(peer_factory, method,
                                                                     empty, asynchronous):
    """get_posting and get_profile answered OK without the record (no
    posting/profile field) raise a local Internal, not return an empty
    record (JobPosting '' 0); an empty record that is there is taken."""
    field_name = method[len("get_"):]
    p = peer_factory(lambda req: ok(req, empty))

    async def acall():
        async with lunamatch.AsyncClient(p.url, timeout=2.0) as c:
            return await getattr(c, method)("rec-1")

    def call():
        if asynchronous:
            return asyncio.run(acall())
        with lunamatch.Client(p.url, timeout=2.0) as c:
            return getattr(c, method)("rec-1")

    with pytest.raises(lunamatch.Internal) as e:
        call()
    assert e.value.local and e.value.message == "OK answer from %s without its %s" % (
        p.url, field_name)
    assert e.value.attempts == [p.url] and len(p.requests) == 1
    present = type(empty)()
    getattr(present, field_name).SetInParent()  # there, all its fields empty
    p.reply = lambda req: ok(req, present)
    assert call() == getattr(present, field_name)


@pytest.mark.parametrize("code", [-1, (1 << 31) - 1, -(1 << 31)])
def test_a_code_within_int32_is_taken(peer_factory, code):
    """The ends of the int32 range, a negative code included (sign-extended
    on the wire), are codes: Unknown with the number, as in the C client."""
    p = peer_factory(lambda req: envelope(req, code, b"odd"))
    with lunamatch.Client(p.url, timeout=1.0) as c:
        with pytest.raises(lunamatch.Unknown) as e:
            c.check()
    assert "status code %d: odd" % code in e.value.message and not e.value.local


def test_unknown_status_code_is_unknown(peer_factory):
    p = peer_factory(lambda req: rpc_pb2.RpcResponse(
        request_id=req.request_id, code=42, message="new").SerializeToString())
    with lunamatch.Client(p.url, timeout=1.0) as c:
        with pytest.raises(lunamatch.Unknown) as e:
            c.check()
    assert "status code 42" in e.value.message and not e.value.local


def test_request_over_the_client_limit_is_not_sent(peer_factory):
    """A request larger than max_request_bytes fails at once with a local
    InvalidArgument: nng would drop it with its connection, on every
    replica."""
    p = peer_factory(lambda req: ok(req, A_POSTING))
    with lunamatch.Client(p.url, timeout=2.0, max_request_bytes=1000) as c:
        c.get_posting("x" * 900)
        with pytest.raises(lunamatch.InvalidArgument) as e:
            c.get_posting("x" * 1000)
        # By default the limit is lunamatch-match's own (1 MiB), as in the
        # C client: a larger request would be dropped with its connection.
        with pytest.raises(lunamatch.InvalidArgument), lunamatch.Client(p.url) as big:
            big.get_posting("x" * (1 << 20))
    assert e.value.local and "max_request_bytes" in e.value.message
    assert len(p.requests) == 1


def test_max_request_bytes_zero_is_the_default_limit(peer_factory):
    """max_request_bytes=0 means the default limit (1 MiB, lunamatch-match's
    own), as max_response_bytes=0 does and as 0 does for either in the C
    client; it was a ValueError."""
    p = peer_factory(lambda req: ok(req, A_POSTING))
    with lunamatch.Client(p.url, timeout=2.0, max_request_bytes=0) as c:
        assert c.max_request_bytes == _rpc.MAX_REQUEST_BYTES
        c.get_posting("x" * ((1 << 20) - 1000))
        with pytest.raises(lunamatch.InvalidArgument) as e:
            c.get_posting("x" * (1 << 20))
    assert e.value.local and "max_request_bytes" in e.value.message
    assert len(p.requests) == 1


def test_answer_over_the_limit_is_not_asked_again_and_again(peer_factory):
    """Answers larger than max_response_bytes: nng drops each with its
    connection. The call tries each endpoint once, not until its deadline,
    and its error names the size limits."""
    # Over the limit and the 64 bytes of room nng's header gets above it.
    big = match_pb2.GetPostingResponse()
    big.posting.description = "x" * 200
    peers = [peer_factory(lambda req: ok(req, big)) for _ in range(2)]
    with lunamatch.Client([p.url for p in peers], timeout=2.0,
                          max_response_bytes=16) as c:
        deadline = time.monotonic() + 5
        while len(c.connected()) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        with pytest.raises(lunamatch.Unavailable) as e:
            c.check()
    assert [len(p.requests) for p in peers] == [1, 1]
    assert e.value.local and "size limit" in e.value.message


def test_answer_at_and_just_over_the_limit(peer_factory):
    """nng counts the reply's header in its receive limit: an answer of
    exactly max_response_bytes is taken (it was dropped), and one over it by
    less than the header's room is refused by the client itself, once,
    naming the limit."""
    answer = match_pb2.HealthCheckResponse(status=1)
    p = peer_factory(lambda req: ok(req, answer))
    # The answer's size: request ids are 32 hex digits.
    size = len(rpc_pb2.RpcResponse(request_id="x" * 32, code=rpc_pb2.OK,
                                   payload=answer.SerializeToString()).SerializeToString())
    with lunamatch.Client(p.url, timeout=2.0, max_response_bytes=size) as c:
        assert c.check().status == 1
    with lunamatch.Client(p.url, timeout=2.0, max_response_bytes=size - 1) as c:
        with pytest.raises(lunamatch.Internal) as e:
            c.check()
    assert e.value.local and "max_response_bytes" in e.value.message


def test_an_endpoint_listed_twice_is_tried_as_two(peer_factory):
    """The same URL twice makes two endpoints (two sockets): a call answered
    UNAVAILABLE on the one goes on to the other, and round again."""
    def unavailable(req):
        return rpc_pb2.RpcResponse(request_id=req.request_id, code=rpc_pb2.UNAVAILABLE,
                                   message="index is loading").SerializeToString()

    p = peer_factory(unavailable)
    with lunamatch.Client([p.url, p.url], timeout=1.0) as c:
        deadline = time.monotonic() + 5
        while len(c.connected()) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        t = time.monotonic()
        with pytest.raises(lunamatch.Unavailable) as e:
            c.check()
        took = time.monotonic() - t
    assert len(p.requests) >= 4 and len(e.value.attempts) == len(p.requests)
    assert took < 1.0


def test_max_response_bytes_zero_is_the_default_limit(peer_factory):
    """max_response_bytes=0 means the default 64 MiB limit, as in the C
    client, not nng's "no limit": an answer over 64 MiB is refused."""
    big = match_pb2.GetPostingResponse()
    big.posting.description = "x" * (_rpc.MAX_RESPONSE_BYTES + 1)
    p = peer_factory(lambda req: ok(req, big))
    with lunamatch.Client(p.url, timeout=5.0, max_response_bytes=0) as c:
        with pytest.raises(lunamatch.Internal) as e:
            c.get_posting("job-1")
    assert e.value.local and "max_response_bytes" in e.value.message


def test_max_response_bytes_must_not_be_negative():
    with pytest.raises(ValueError, match="max_response_bytes"):
        lunamatch.Client("tcp://127.0.0.1:1", max_response_bytes=-1)


@pytest.mark.parametrize("option, bad", [
    ("max_response_bytes", 2 ** 64), ("max_response_bytes", (1 << 64) - 64),
    ("max_response_bytes", 1 << 32),  # over nng's largest receive limit
    ("max_response_bytes", (1 << 30) + 1),  # over the C client's ceiling
    ("max_request_bytes", 2 ** 64), ("max_request_bytes", -(2 ** 64)),
    ("max_request_bytes", (64 << 20) + 1),
])
@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "asyncio"])
def test_a_byte_limit_out_of_range_is_a_value_error(option, bad, asynchronous):
    """Out of range is the documented ValueError, however large (it was an
    OverflowError from nng's option, or a limit nng refused and pynng
    dropped without a word: the socket then took answers of any size)."""
    cls = aio.AsyncClient if asynchronous else lunamatch.Client
    with pytest.raises(ValueError, match="^%s must be from 0 " % option):
        cls("tcp://127.0.0.1:1", **{option: bad})


def test_the_largest_max_response_bytes_is_the_c_clients():
    """MAX_RESPONSE_BYTES_CEILING (1 GiB, LM_CLIENT_MAX_RESPONSE) is taken,
    and nng's receive limit is set to it plus the SP header's room; one more
    byte is a ValueError."""
    assert _rpc.MAX_RESPONSE_BYTES_CEILING == 1 << 30
    with lunamatch.Client("tcp://127.0.0.1:1",
                          max_response_bytes=_rpc.MAX_RESPONSE_BYTES_CEILING) as c:
        assert c._pool.sockets[0].recv_max_size == (1 << 30) + _rpc.SP_HEADER_MAX
    with pytest.raises(ValueError):
        lunamatch.Client("tcp://127.0.0.1:1",
                         max_response_bytes=_rpc.MAX_RESPONSE_BYTES_CEILING + 1)


@pytest.mark.parametrize("option, bad", [
    ("max_response_bytes", 1.5e6), ("max_response_bytes", float(1 << 20)),
    ("max_response_bytes", True), ("max_response_bytes", "1048576"),
    ("max_request_bytes", 1.5e6), ("max_request_bytes", False),
    ("max_request_bytes", None), ("timeout", True), ("timeout", "5"),
    ("timeout", None), ("caller", b"svc"), ("caller", 42),
])
@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "asyncio"])
def test_an_option_of_the_wrong_type_is_a_type_error(option, bad, asynchronous):
    """Byte limits are ints, a timeout a real number (int or float), caller
    a str; a bool is none of them (True would be a 1-byte limit or a 1 s
    timeout). A float was taken, caller=b"svc" was an AttributeError."""
    cls = aio.AsyncClient if asynchronous else lunamatch.Client
    with pytest.raises(TypeError, match="^%s must be " % option):
        cls("tcp://127.0.0.1:1", **{option: bad})


def test_a_call_timeout_of_the_wrong_type_is_a_type_error():
    with lunamatch.Client("tcp://127.0.0.1:1") as c:
        for bad in (True, "1", b"1"):
            with pytest.raises(TypeError, match="^timeout must be "):
                c.check(timeout=bad)


def test_options_of_the_right_types_are_taken():
    """int and float timeouts (a float that is cut to 10 minutes too),
    ints of other types (operator.index) as byte limits."""
    import fractions
    for timeout, want in ((2, 2.0), (0.5, 0.5), (fractions.Fraction(1, 4), 0.25),
                          (10 ** 400, 600.0), (1e9, 600.0)):
        with lunamatch.Client("tcp://127.0.0.1:1", timeout=timeout) as c:
            assert c.timeout == want and type(c.timeout) is float
    with lunamatch.Client("tcp://127.0.0.1:1", caller="", max_request_bytes=0,
                          max_response_bytes=0) as c:
        assert c.caller is None and c.max_request_bytes == _rpc.MAX_REQUEST_BYTES
        assert c._pool.max_response_bytes == _rpc.MAX_RESPONSE_BYTES


@pytest.mark.parametrize("url", ["127.0.0.1:7700", "http://127.0.0.1:7700", "tcp://",
                                 "tcp://127.0.0.1:7700,ipc://"])
def test_an_endpoint_that_cannot_be_dialled_is_a_value_error(url):
    """A URL nng cannot dial (no scheme, another scheme, no address) is a
    ValueError that names it, as the C client refuses it with LM_EINVAL;
    not one of pynng's exceptions that says only "Invalid argument"."""
    bad = url.split(",")[-1]
    with pytest.raises(ValueError, match="cannot dial %s: " % bad):
        lunamatch.Client(url)


@pytest.mark.parametrize("url, port", [
    ("tcp://127.0.0.1:99999", "99999"), ("tcp://127.0.0.1:65536", "65536"),
    ("tcp://127.0.0.1:0", "0"), ("tcp://127.0.0.1:7x00", "7x00"),
    ("tcp://127.0.0.1:", ""), ("tcp://127.0.0.1:+80", "+80"),
    ("tcp://127.0.0.1:000080", "000080"), ("tcp://127.0.0.1:\u0667", "\u0667"),
    ("tcp://[::1]:70000", "70000"), ("tcp4://127.0.0.1:0", "0"),
    ("tls+tcp://localhost:99999", "99999"), ("tls+tcp6://[::1]:1e3", "1e3"),
    ("tcp://127.0.0.1:7700,tcp://127.0.0.1:77000", "77000"),
    ("tcp://127.0.0.1:no-such-service-lunamatch", "no-such-service-lunamatch"),
    ("tcp://127.0.0.1:0x50", "0x50"),
    # nng takes a scheme in any case.
    ("TCP://127.0.0.1:99999", "99999"), ("Tls+Tcp4://127.0.0.1:0", "0"),
    ("TLS+TCP://localhost:65536", "65536"),
])
@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "asyncio"])
def test_a_tcp_port_that_is_not_1_to_65535_is_a_value_error(url, port, asynchronous):
    """A TCP URL whose port is not a number from 1 to 65535 is a ValueError
    naming it, as in the C client: nng took it, and every call waited out
    its deadline for a connection and raised Unavailable."""
    cls = aio.AsyncClient if asynchronous else lunamatch.Client
    bad = url.split(",")[-1]
    with pytest.raises(ValueError, match="cannot dial %s: port '%s' is neither a "
                       "number from 1 to 65535 nor a service name the system knows"
                       % (re.escape(bad), re.escape(port))):
        cls(url)


@pytest.mark.parametrize("url", ["tcp://127.0.0.1:1", "tcp://127.0.0.1:65535",
                                 "tcp://localhost:07700", "tcp://[::1]:7700",
                                 "tcp6://[::1]:7700", "tls+tcp://localhost:7700",
                                 "ipc:///tmp/lunamatch-port-test.sock"])
def test_a_port_from_1_to_65535_is_taken(url):
    with lunamatch.Client(url) as c:
        assert c.endpoints == [url]


@pytest.mark.parametrize("url, tls", [
    ("tls+tcp://h:1", True), ("TLS+TCP://h:1", True), ("Tls+Tcp6://h:1", True),
    ("tcp://h:1", False), ("TCP://h:1", False), ("ipc:///x", False), ("h:1", False),
])
def test_schemes_are_compared_in_any_case(url, tls):
    assert _rpc.is_tls(url) is tls


def test_a_port_by_service_name_is_taken():
    """A port given by a service name the system knows, which nng
    resolves, is taken, as by the C client."""
    try:
        socket.getservbyname("http", "tcp")
    except OSError:
        pytest.skip("the system knows no service names")
    with lunamatch.Client("tcp://127.0.0.1:http") as c:
        assert c.endpoints == ["tcp://127.0.0.1:http"]


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "asyncio"])
def test_caller_is_sent_with_every_call(peer_factory, asynchronous):
    """caller= goes out as the "caller" metadata entry, which the server's
    decision log records; a call's own "caller" entry takes its place."""
    p = peer_factory(lambda req: ok(req, match_pb2.HealthCheckResponse(status=1)))
    calls = [{}, {"metadata": {"x-trace-id": "t1"}}, {"metadata": {"caller": "batch-job"}}]
    if asynchronous:
        async def main():
            async with lunamatch.AsyncClient(p.url, timeout=2.0, caller="mailer") as c:
                for kw in calls:
                    await c.check(**kw)

        asyncio.run(asyncio.wait_for(main(), 30))
    else:
        with lunamatch.Client(p.url, timeout=2.0, caller="mailer") as c:
            for kw in calls:
                c.check(**kw)
    assert [[(m.key, m.value) for m in r.metadata] for r in p.requests] == [
        [("caller", "mailer")],
        [("caller", "mailer"), ("x-trace-id", "t1")],
        [("caller", "batch-job")],
    ]


def test_no_caller_sends_no_entry(peer_factory):
    p = peer_factory(lambda req: ok(req, match_pb2.HealthCheckResponse(status=1)))
    for caller in (None, ""):
        with lunamatch.Client(p.url, timeout=2.0, caller=caller) as c:
            c.check()
    assert [list(r.metadata) for r in p.requests] == [[], []]


def test_caller_is_at_most_1024_bytes():
    """The server's limit on a metadata value, counted in UTF-8 bytes; and
    a string the server takes (no NUL character)."""
    lunamatch.Client("tcp://127.0.0.1:1", caller="x" * 1024).close()
    for caller in ("x" * 1025, "é" * 513, "billing\0", "svc\ud800"):
        with pytest.raises(ValueError, match="caller"):
            lunamatch.Client("tcp://127.0.0.1:1", caller=caller)


def field(number, value):
    """A length-delimited field on the wire."""
    n, head = len(value), bytes([number << 3 | 2])
    while n >= 0x80:
        head += bytes([n & 0x7f | 0x80])
        n >>= 7
    return head + bytes([n]) + value


def densest_answer():
    """The densest answer the service gives, as the C client measures it:
    top_k 1000 at FULL, 100 skills per match, one-character ids and names."""
    r = match_pb2.MatchJobsResponse(considered=5000, model_version="m")
    for i in range(1000):
        m = r.matches.add(job_id="j", candidate_id="c", score=0.5, rank=i + 1, title="t",
                          company="c")
        e = m.explanation
        e.summary = "s"
        for _ in range(8):
            e.features.add(feature="f", value=0.5, weight=0.5, contribution=0.1, detail="d")
        for _ in range(100):
            e.matched_skills.add(skill_id="a", name="b", importance=0.1,
                                 candidate_years=1.5, preferred=True)
    return r


@pytest.mark.parametrize("payload", [
    b"\x0a\x00" * (1 << 20),  # a million empty matches
    field(1, field(7, b"\x1a\x00" * (1 << 20))),  # a match with a million empty skills
], ids=["matches", "skills"])
def test_an_answer_too_costly_to_decode_is_refused(peer_factory, payload):
    """An answer whose bytes would take many times their size once decoded
    (an empty message is two bytes on the wire and a hundred in memory) is
    refused before it is decoded, as the C client does: a local Internal
    that says so, not a response that took some fifty times
    max_response_bytes. The call is not sent again."""
    p = peer_factory(lambda req: rpc_pb2.RpcResponse(request_id=req.request_id,
                                                     payload=payload).SerializeToString())
    with lunamatch.Client(p.url, timeout=5.0) as c:
        with pytest.raises(lunamatch.Internal) as e:
            c.match_jobs("cand-1")
    assert e.value.local and "memory" in e.value.message
    assert "MatchJobsResponse" in e.value.message and len(p.requests) == 1


def test_the_densest_answer_is_decoded(peer_factory):
    want = densest_answer()
    p = peer_factory(lambda req: ok(req, want))
    with lunamatch.Client(p.url, timeout=10.0) as c:
        assert c.match_jobs("cand-1", top_k=1000, explain="FULL") == want


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "asyncio"])
def test_checking_a_huge_answer_ends_at_the_deadline(peer_factory, asynchronous):
    """An answer is checked for its decoding cost field by field, which for
    tens of MiB of two-byte fields takes seconds (the decoder itself takes
    a fraction of that). The check ends with the call's deadline and its
    grace: a local DeadlineExceeded, not a call that outlasts its timeout
    many times over (and holds an event loop as long)."""
    payload = b"\x78\x01" * (16 << 20)  # 32 MiB of small unknown fields
    p = peer_factory(lambda req: rpc_pb2.RpcResponse(
        request_id=req.request_id, payload=payload).SerializeToString())
    timeout = 0.5
    c = (lunamatch.AsyncClient if asynchronous else lunamatch.Client)(p.url, timeout=5.0)
    try:
        deadline = time.monotonic() + 5
        while len(c.connected()) < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        t = time.monotonic()
        with pytest.raises(lunamatch.DeadlineExceeded) as e:
            r = c.match_jobs("cand-1", timeout=timeout)
            if asynchronous:
                asyncio.run(r)
        took = time.monotonic() - t
    finally:
        c.close()
    assert e.value.local and "MatchJobsResponse" in e.value.message
    assert took < timeout + _rpc.DEADLINE_GRACE + 1.0, took
    assert len(p.requests) == 1


@functools.lru_cache(maxsize=None)
def densest_payload():
    return densest_answer().SerializeToString()


def answering(payload):
    """A reply of an OK envelope around payload(), made when asked."""
    return lambda req: rpc_pb2.RpcResponse(request_id=req.request_id,
                                           payload=payload()).SerializeToString()


def test_a_large_answer_does_not_hold_the_event_loop(peer_factory, monkeypatch):
    """Checking and decoding an answer of some MiB takes tens to hundreds of
    ms. The asyncio client does it on a thread of its own (checked), so
    that the other tasks of the event loop run meanwhile: no pause of the
    loop comes near the time the synchronous client takes for the same
    call (the bound is relative to this machine, and loose, 0.8 of that
    time, since a loaded machine can pause any thread: decoded on the
    loop, the pause is all of it). The answer is the densest one four
    times over, 10 MiB."""
    want = match_pb2.MatchJobsResponse()
    for _ in range(4):
        want.MergeFromString(densest_payload())
    payload = want.SerializeToString()
    p = peer_factory(answering(lambda: payload))
    with lunamatch.Client(p.url, timeout=10.0) as c:
        connected(c, 1)
        t = time.monotonic()
        sync = c.match_jobs("cand-1")
        inline = time.monotonic() - t
    assert sync == want
    assert inline > 0.05, "the answer is meant to take longer to decode: %.3f s" % inline

    decoded_on = []
    decode = _rpc.Call.decode

    def recording(self, raw):
        decoded_on.append(threading.current_thread().name)
        return decode(self, raw)

    monkeypatch.setattr(_rpc.Call, "decode", recording)

    async def main():
        async with lunamatch.AsyncClient(p.url, timeout=10.0) as c:
            connected(c, 1)
            task = asyncio.ensure_future(c.match_jobs("cand-1"))
            gaps, last = [], time.monotonic()
            while not task.done():  # for at most the call's timeout
                await asyncio.sleep(0.002)
                now = time.monotonic()
                gaps.append(now - last)
                last = now
            return task.result(), max(gaps)

    got, gap = asyncio.run(asyncio.wait_for(main(), 30))
    assert got == want
    assert len(decoded_on) == 1 and decoded_on[0].startswith("lunamatch-decode"), decoded_on
    assert gap < inline * 0.8, "the loop stood %.3f s, the call takes %.3f s" % (gap, inline)


def test_a_large_answer_after_close_is_decoded_on_the_loop(peer_factory):
    """An answer that arrives as the client closes finds its decoding thread
    shut down: it is decoded on the loop instead, and the call gets it
    (not the thread pool's error)."""
    want = match_pb2.MatchJobsResponse()
    want.MergeFromString(densest_payload())
    assert len(want.SerializeToString()) > aio.INLINE_DECODE_BYTES
    p = peer_factory(answering(want.SerializeToString))

    async def main():
        async with lunamatch.AsyncClient(p.url, timeout=10.0) as c:
            connected(c, 1)
            c._decoder.shutdown(wait=True)
            return await c.match_jobs("cand-1")

    assert asyncio.run(asyncio.wait_for(main(), 30)) == want


def test_close_during_a_call_cancels_it(peer_factory):
    """A call in flight when its client is closed fails at once with a
    local Cancelled (it was pynng's Closed), in both clients."""
    p = peer_factory(lambda req: None)  # never answers
    c = lunamatch.Client(p.url, timeout=10.0)
    connected(c, 1)
    got = {}

    def call():
        t0 = time.monotonic()
        try:
            c.get_posting("job-1")
        except Exception as e:  # noqa: BLE001 - the type is what is tested
            got["e"], got["s"] = e, time.monotonic() - t0

    t = threading.Thread(target=call)
    t.start()
    wait_for("the request", lambda: len(p.requests) == 1, timeout=5)
    c.close()
    t.join(5)
    assert isinstance(got.get("e"), lunamatch.Cancelled), got
    assert got["e"].local and got["s"] < 5

    async def main():
        ac = lunamatch.AsyncClient(p.url, timeout=10.0)
        connected(ac, 1)
        task = asyncio.ensure_future(ac.get_posting("job-2"))
        while len(p.requests) < 2:
            await asyncio.sleep(0.01)
        ac.close()
        with pytest.raises(lunamatch.Cancelled) as e:
            await asyncio.wait_for(task, 5)
        assert e.value.local

    asyncio.run(asyncio.wait_for(main(), 30))


def close_when(urls, asynchronous, ready, timeout=10.0):
    """Runs check() on a new client of urls, sync or asyncio, and closes the
    client once ready (a threading.Event) is set, within 5 s. Returns what
    the call raised and the seconds from the close to the call's end."""
    if not asynchronous:
        c = lunamatch.Client(urls, timeout=timeout)
        got = {}

        def call():
            try:
                c.check()
            except Exception as e:  # noqa: BLE001 - the type is what is tested
                got["e"] = e
            got["end"] = time.monotonic()

        t = threading.Thread(target=call, daemon=True)
        t.start()
        assert ready.wait(5)
        closed_at = time.monotonic()
        c.close()
        t.join(timeout + 5)
        return got.get("e"), got["end"] - closed_at

    async def main():
        ac = lunamatch.AsyncClient(urls, timeout=timeout)
        task = asyncio.ensure_future(ac.check())
        for _ in range(500):
            if ready.is_set():
                break
            await asyncio.sleep(0.01)
        assert ready.is_set()
        closed_at = time.monotonic()
        ac.close()
        try:
            await asyncio.wait_for(task, timeout + 5)
        except Exception as e:  # noqa: BLE001 - the type is what is tested
            return e, time.monotonic() - closed_at
        return None, time.monotonic() - closed_at

    return asyncio.run(main())


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("wait", ["one-unreachable", "two-unreachable", "round-pause"])
def test_close_cancels_a_call_waiting_for_a_connection(peer_factory, monkeypatch,
                                                       asynchronous, wait):
    """A call that has no connection to send on when its client is closed
    fails as one in flight does, with a local Cancelled at once, not with
    Unavailable at its deadline (10 s here): waiting for an endpoint that
    nobody listens on (one or two of them), or in the pause between two
    rounds of endpoints that answer UNAVAILABLE (made 5 s long here)."""
    if wait == "round-pause":
        monkeypatch.setattr(_rpc, "ROUND_PAUSE_MIN", 5.0)
        monkeypatch.setattr(_rpc, "ROUND_PAUSE_MAX", 5.0)
        urls = [peer_factory(lambda req: rpc_pb2.RpcResponse(
            request_id=req.request_id, code=rpc_pb2.UNAVAILABLE,
            message="draining").SerializeToString()).url for _ in range(2)]
    else:
        urls = ["tcp://127.0.0.1:%d" % free_port()
                for _ in range(1 if wait == "one-unreachable" else 2)]
    waiting, pick = threading.Event(), _rpc.Call.pick

    def watched(call):
        j = pick(call)
        if j is None and (wait != "round-pause" or call.round_at is not None):
            waiting.set()
        return j

    monkeypatch.setattr(_rpc.Call, "pick", watched)
    err, seconds = close_when(urls, asynchronous, waiting)
    assert isinstance(err, lunamatch.Cancelled), err
    assert err.local and seconds < 1.0, (err, seconds)


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_close_between_pick_and_flight_cancels_the_call(peer_factory, monkeypatch,
                                                        asynchronous):
    """A close that lands after the call chose its endpoint and before it
    opened a context there (another thread closing a shared client) ends
    the call with a local Cancelled, as any close during a call."""
    p = peer_factory(lambda req: ok(req, match_pb2.HealthCheckResponse(status=1)))
    pick, client = _rpc.Call.pick, []

    def pick_then_close(call):
        j = pick(call)
        if j is not None:
            client[0].close()
        return j

    async def on_loop():
        async with lunamatch.AsyncClient(p.url, timeout=10.0) as ac:
            client.append(ac)
            return await ac.check()

    monkeypatch.setattr(_rpc.Call, "pick", pick_then_close)
    with pytest.raises(lunamatch.Cancelled) as e:
        if asynchronous:
            asyncio.run(asyncio.wait_for(on_loop(), 30))
        else:
            with lunamatch.Client(p.url, timeout=10.0) as c:
                client.append(c)
                c.check()
    assert e.value.local and p.requests == []


def test_close_does_not_wait_for_a_call_outside_nng(peer_factory, monkeypatch):
    """close() waits only for the calls inside an nng function with a
    socket's context (Pool.run), not for a call decoding its answer:
    it returns at once with the sockets closed, and the call ends with its
    answer."""
    p = peer_factory(lambda req: ok(req, match_pb2.HealthCheckResponse(status=1)))
    decoding, release, decode = threading.Event(), threading.Event(), _rpc.Call.decode

    def held(call, raw):
        decoding.set()
        assert release.wait(10)
        return decode(call, raw)

    monkeypatch.setattr(_rpc.Call, "decode", held)
    c = lunamatch.Client(p.url, timeout=10.0)
    connected(c, 1)
    got = {}
    t = _call_in_thread(c, got)
    assert decoding.wait(5)
    t0 = time.monotonic()
    c.close()
    assert time.monotonic() - t0 < 0.5
    assert c._pool not in _rpc._open_pools  # its sockets are closed
    with pytest.raises(RuntimeError, match="^client is closed$"):
        c.check()
    release.set()
    t.join(5)
    assert got.get("r") is not None and got["r"].status == 1, got


class _HeldSend:
    """Stands for the nng library in _rpc: nng_ctx_send (a call starting its
    request on its context, inside nng) waits for release first."""

    def __init__(self):
        self.inside, self.release = threading.Event(), threading.Event()

    def __getattr__(self, name):
        return getattr(pynng.lib, name)

    def nng_ctx_send(self, ctx, aio):
        self.inside.set()
        assert self.release.wait(10)
        return pynng.lib.nng_ctx_send(ctx, aio)


def _call_in_thread(c, got):
    def call():
        try:
            got["r"] = c.check()
        except Exception as e:  # noqa: BLE001 - the type is what is tested
            got["e"] = e

    t = threading.Thread(target=call)
    t.start()
    return t


def _call_held_inside_nng(peer_factory, monkeypatch):
    """A client of a peer that answers Check, and a Check of another thread
    held inside nng (starting its send) until held.release is set. Returns
    the client, the _HeldSend, the call's result dict and its thread."""
    p = peer_factory(lambda req: ok(req, match_pb2.HealthCheckResponse(status=1)))
    held = _HeldSend()
    monkeypatch.setattr(_rpc, "lib", held)
    c = lunamatch.Client(p.url, timeout=10.0)
    connected(c, 1)
    got = {}
    t = _call_in_thread(c, got)
    assert held.inside.wait(5)
    return c, held, got, t


def test_close_waits_for_a_call_inside_nng_and_a_second_close_too(peer_factory,
                                                                    monkeypatch):
    """close() closes the sockets only once a call of another thread is out
    of nng (here starting its send); a second close() meanwhile returns
    only once the sockets are closed, not at once (as client.py promises:
    close() returns once the calls have ended). The call fails with a local
    Cancelled."""
    c, held, got, t = _call_held_inside_nng(peer_factory, monkeypatch)
    first = threading.Thread(target=c.close)
    first.start()
    time.sleep(0.1)
    assert first.is_alive() and c._pool in _rpc._open_pools
    second = threading.Thread(target=c.close)
    second.start()
    time.sleep(0.2)
    assert second.is_alive(), "a second close() returned before the sockets were closed"
    assert c._pool in _rpc._open_pools
    held.release.set()
    second.join(5)
    assert not second.is_alive()
    assert c._pool not in _rpc._open_pools  # closed when the second close() returned
    first.join(5)
    t.join(5)
    assert isinstance(got.get("e"), lunamatch.Cancelled) and got["e"].local, got


def test_close_leaves_the_sockets_to_a_call_stuck_inside_nng(peer_factory, monkeypatch):
    """Should a call of another thread stay inside nng past CLOSE_WAIT,
    close() returns with the sockets open, and the call closes them as it
    comes out; it fails with a local Cancelled."""
    monkeypatch.setattr(_rpc, "CLOSE_WAIT", 0.3)
    c, held, got, t = _call_held_inside_nng(peer_factory, monkeypatch)
    t0 = time.monotonic()
    c.close()
    assert 0.25 < time.monotonic() - t0 < 2.0
    assert c._pool in _rpc._open_pools
    held.release.set()
    t.join(5)
    assert c._pool not in _rpc._open_pools
    assert isinstance(got.get("e"), lunamatch.Cancelled) and got["e"].local, got


def test_close_with_calls_on_a_stopped_loop(peer_factory, monkeypatch):
    """An AsyncClient closed from another thread while its event loop is
    stopped with calls in flight: those calls are outside nng, so close()
    returns at once with the sockets closed (it does not wait out
    CLOSE_WAIT, nor leave them open), and the calls fail with a local
    Cancelled once the loop runs again."""
    monkeypatch.setattr(_rpc, "CLOSE_WAIT", 2.0)
    p = peer_factory(lambda req: None)  # takes requests, never answers
    c = lunamatch.AsyncClient(p.url, timeout=30.0)
    connected(c, 1)
    loop = asyncio.new_event_loop()
    runner = threading.Thread(target=loop.run_forever)
    runner.start()
    try:
        futs = [asyncio.run_coroutine_threadsafe(c.check(), loop) for _ in range(3)]
        wait_for("3 requests", lambda: len(p.requests) == 3, timeout=5, step=0.01)
        loop.call_soon_threadsafe(loop.stop)
        runner.join(5)
        t0 = time.monotonic()
        c.close()
        assert time.monotonic() - t0 < 1.0
        assert c._pool not in _rpc._open_pools  # its sockets are closed
        runner = threading.Thread(target=loop.run_forever)
        runner.start()
        for f in futs:
            with pytest.raises(lunamatch.Cancelled) as e:
                f.result(5)
            assert e.value.local
    finally:
        loop.call_soon_threadsafe(loop.stop)
        runner.join(5)
        loop.close()
        c.close()


def described(err):
    """An RpcError as what two calls' errors have in common: all but the
    request id."""
    return (type(err), err.code, err.message, err.local, err.method, err.endpoint,
            err.attempts)


@pytest.mark.parametrize("reply, large", [
    (answering(lambda: b""), False),
    (answering(densest_payload), True),
    (answering(lambda: densest_payload() + b"\xff"), True),
    (answering(lambda: b"\x0a\x00" * (1 << 20)), True),
    (lambda req: field(1, req.request_id.encode()) + field(4, densest_payload())[:-1], True),
], ids=["small", "large", "large-unreadable-payload", "large-too-costly",
        "large-unreadable-envelope"])
def test_the_asyncio_client_decodes_as_the_sync_one(peer_factory, monkeypatch, reply, large):
    """The asyncio client checks and decodes an answer larger than
    aio.INLINE_DECODE_BYTES on a thread other than the event loop's, a
    smaller one on the loop; either way its result, or its error (class,
    code, message, attributes), is the synchronous client's."""
    assert (len(reply(rpc_pb2.RpcRequest(request_id="x" * 32)))
            > aio.INLINE_DECODE_BYTES) == large
    p = peer_factory(reply)
    with lunamatch.Client(p.url, timeout=10.0) as c:
        try:
            want = c.match_jobs("cand-1")
        except lunamatch.RpcError as e:
            want = described(e)

    threads = []
    check = _rpc.decode_cost_ok

    def recorded(*args):
        threads.append(threading.get_ident())
        return check(*args)

    async def main():
        async with lunamatch.AsyncClient(p.url, timeout=10.0) as c:
            connected(c, 1)
            monkeypatch.setattr(_rpc, "decode_cost_ok", recorded)
            try:
                got = await c.match_jobs("cand-1")
            except lunamatch.RpcError as e:
                got = described(e)
            return got, threading.get_ident()

    got, loop = asyncio.run(asyncio.wait_for(main(), 30))
    assert got == want
    assert threads, "the answer was not checked"
    if large:
        assert loop not in threads
    else:
        assert set(threads) == {loop}


def test_a_call_cancelled_while_its_answer_is_decoded(peer_factory, monkeypatch):
    """A task cancelled while its large answer is decoded ends cancelled at
    once, without waiting for the decoding, whose result is dropped once
    it ends; the client's next call is answered, and its decoding thread
    ends when the client is closed."""
    p = peer_factory(answering(densest_payload))
    want = match_pb2.MatchJobsResponse.FromString(densest_payload())
    started, go = threading.Event(), threading.Event()
    decoders = []
    check = _rpc.decode_cost_ok

    def held(*args):
        if not started.is_set():
            decoders.append(threading.get_ident())
            started.set()
            go.wait(10)
        return check(*args)

    async def main():
        async with lunamatch.AsyncClient(p.url, timeout=10.0) as c:
            connected(c, 1)
            monkeypatch.setattr(_rpc, "decode_cost_ok", held)
            task = asyncio.ensure_future(c.match_jobs("cand-1"))
            deadline = time.monotonic() + 10
            while not started.is_set() and time.monotonic() < deadline:
                await asyncio.sleep(0.001)
            assert started.is_set()
            task.cancel()
            t = time.monotonic()
            with pytest.raises(asyncio.CancelledError):
                await task
            took = time.monotonic() - t
            go.set()
            again = await c.match_jobs("cand-1")
        return took, again, threading.get_ident()

    took, again, loop = asyncio.run(asyncio.wait_for(main(), 30))
    assert took < 1.0 and again == want
    assert decoders[0] != loop
    wait_for("the decoding thread ended",
             lambda: all(t.ident != decoders[0] for t in threading.enumerate()),
             timeout=5.0, step=0.01)


def test_connections_lost_under_concurrent_calls_give_rpc_errors(peer_factory):
    """Many threads call a client of several endpoints whose connections
    keep going (each endpoint answers some calls UNAVAILABLE, which closes
    the connection, and drops others with theirs). When a connection goes,
    the calls waiting on its endpoint are aborted; an abort that lands on
    a send or receive nng has begun but not yet scheduled, or is
    completing, made its wait return at once while the operation went on:
    a request taken as sent, whose receive then failed with pynng's
    BadState, or an aio freed while nng still finished it (the interpreter
    crashed). Every call must end with a response or an RpcError."""
    rng = random.Random(1)

    def reply(req):
        n = rng.randrange(10)
        if n < 3:
            return rpc_pb2.RpcResponse(request_id=req.request_id, code=rpc_pb2.UNAVAILABLE,
                                       message="draining").SerializeToString()
        return DROP if n < 5 else ok(req, match_pb2.HealthCheckResponse(status=1))

    peers = [peer_factory(reply) for _ in range(3)]
    other = []
    calls = [0]
    with lunamatch.Client([p.url for p in peers] * 2, timeout=2.0) as c:
        end = time.monotonic() + 20

        def work():
            while time.monotonic() < end and not other and calls[0] < 3000:
                calls[0] += 1
                try:
                    c.check()
                except lunamatch.RpcError:
                    pass
                except Exception as e:  # noqa: BLE001 - what the test looks for
                    other.append(e)

        threads = [threading.Thread(target=work) for _ in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    assert other == [], (other, calls[0])


#: A client left unclosed, then a garbage collection inside one of nng's
#: own threads (a pipe callback): {drop} is how the client is left; the two
#: listeners' URLs are its arguments.
_DROPPED_CLIENT = """
import gc, sys, threading, time
import pynng, lunamatch

first, second = sys.argv[1:]
server = pynng.Rep0(listen=first)
a = lunamatch.Client(first, timeout=2.0)
end = time.monotonic() + 5
while not a.connected() and time.monotonic() < end:
    time.sleep(0.01)
assert a.connected()
{drop}
collected = threading.Event()
other = pynng.Rep0(listen=second)
req = pynng.Req0(dial=second)
req.add_post_pipe_remove_cb(lambda pipe: (gc.collect(), collected.set()))
end = time.monotonic() + 5
while not req.pipes and time.monotonic() < end:
    time.sleep(0.01)
other.close()
assert collected.wait(10), "the collection in nng's thread did not finish"
for s in (req, server):
    s.close()
print("ok")
"""


@pytest.mark.parametrize("drop", ["del a", "a.cycle = a; del a"],
                         ids=["dropped", "in a cycle"])
def test_a_client_left_unclosed_does_not_hang_the_process(drop):
    """pynng's sockets refer to themselves: left to the cycle collector,
    they are closed in whatever thread it runs, and in one of nng's own,
    nng_close waits for that very thread. The client closes its sockets
    when it is dropped (here the unclosed client of another test hung the
    whole suite), or, collected in a cycle on an nng thread, from a thread
    of its own. Run in a child process, which a regression hangs."""
    script = _DROPPED_CLIENT.format(drop=drop)
    urls = ["tcp://127.0.0.1:%d" % free_port() for _ in range(2)]
    try:
        out = subprocess.run([sys.executable, "-W", "always::ResourceWarning",
                              "-c", script, *urls], capture_output=True, text=True,
                             timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("the process hung")
    assert out.returncode == 0 and out.stdout == "ok\n", out.stderr
    assert "ResourceWarning: unclosed lunamatch client of tcp://127.0.0.1:" in out.stderr


#: The MatchService methods, each with whether it only reads (so that a call
#: may be sent again to another endpoint). A method added to match.proto
#: fails test_every_method_is_classified until it is listed here and, when
#: it only reads, in _rpc.IDEMPOTENT.
READ_ONLY = {"MatchJobs": True, "MatchCandidates": True, "ExplainMatch": True,
             "GetPosting": True, "GetProfile": True, "Check": True}


def test_every_method_is_classified():
    assert set(_rpc.METHODS) == set(READ_ONLY), "classify the new MatchService methods"
    assert _rpc.IDEMPOTENT == {m for m, ro in READ_ONLY.items() if ro}


#: A client of the package whose match.proto has one more method, Reserve,
#: that is not read-only: does a Reserve call whose connection is lost move
#: to the second endpoint? Prints the outcome.
_NEW_METHOD_CLIENT = """
import sys
import lunamatch
from lunamatch import _rpc, aio
from lunamatch.v1 import match_pb2

assert "Reserve" in _rpc.METHODS
with lunamatch.Client(sys.argv[1:], timeout=2.0) as c:
    try:
        c.call("Reserve", match_pb2.GetPostingRequest(id="job-1"))
        print("answered")
    except lunamatch.Unavailable as e:
        print("unavailable", e.local, len(e.attempts))
"""


def test_a_method_with_side_effects_is_not_sent_again(peer_factory, tmp_path):
    """IDEMPOTENT is a list of the read-only methods, not every method of
    match.proto: a method added to the service later is not sent again to
    another endpoint after its connection was lost (it may have been
    carried out), whether it is called through call() unknown to the
    client or is known from a newer match.proto."""
    dropping = peer_factory(lambda req: DROP)
    answering = peer_factory(lambda req: ok(req, match_pb2.GetPostingResponse()))
    urls = [dropping.url, answering.url]
    with lunamatch.Client(urls, timeout=2.0) as c:
        deadline = time.monotonic() + 5
        while len(c.connected()) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        with pytest.raises(lunamatch.Unavailable) as e:
            c.call("Reserve", b"")  # the first call starts at the first endpoint
    assert e.value.local and e.value.attempts == [dropping.url]

    # The installed package, with match_pb2 generated from a match.proto
    # that has Reserve.
    from grpc_tools import protoc
    pkg = tmp_path / "pkg"
    shutil.copytree(Path(lunamatch.__file__).parent, pkg / "lunamatch",
                    ignore=shutil.ignore_patterns("__pycache__"))
    proto = tmp_path / "proto"
    shutil.copytree(REPO / "proto", proto)
    match_proto = proto / "lunamatch" / "v1" / "match.proto"
    text = match_proto.read_text()
    assert "rpc Check(" in text
    match_proto.write_text(text.replace(
        "rpc Check(", "rpc Reserve(GetPostingRequest) returns (GetPostingResponse);\n  rpc Check(", 1))
    include = Path(protoc.__file__).parent / "_proto"
    assert protoc.main(["protoc", "-I%s" % proto, "-I%s" % include, "--python_out=%s" % pkg,
                        str(match_proto)]) == 0
    before = len(dropping.requests) + len(answering.requests)
    out = subprocess.run([sys.executable, "-c", _NEW_METHOD_CLIENT, *urls],
                         env=dict(os.environ, PYTHONPATH=str(pkg)), capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-4000:]
    assert out.stdout.split() == ["unavailable", "True", "1"]
    assert len(dropping.requests) + len(answering.requests) == before + 1
    assert len(answering.requests) == 0


def call_on_new_client(asynchronous, urls, connections, *args, **kw):
    """c.call(*args, **kw) on a new Client (asynchronous: AsyncClient) of
    urls, once it has a connection to `connections` of them: the result, or
    the RpcError raised."""
    if asynchronous:
        async def main():
            async with lunamatch.AsyncClient(urls, timeout=5.0) as c:
                connected(c, connections)
                try:
                    return await c.call(*args, **kw)
                except lunamatch.RpcError as e:
                    return e
        return asyncio.run(asyncio.wait_for(main(), 30))
    with lunamatch.Client(urls, timeout=5.0) as c:
        connected(c, connections)
        try:
            return c.call(*args, **kw)
        except lunamatch.RpcError as e:
            return e


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "asyncio"])
@pytest.mark.parametrize("first", ["gone", "dead", "dropping"])
def test_a_method_with_side_effects_moves_on_only_while_unsent(peer_factory, monkeypatch,
                                                                asynchronous, first):
    """A call of a method that is not read-only (Reserve, unknown to the
    client) moves to another endpoint while its request has not left the
    client, whatever the method, as in the C client (a failed send is
    NO_CONN there); once sent, it is sent nowhere else. The call is its
    client's first, so it starts at the first endpoint, which
    - gone: was connected when the call picked it, and lost that
      connection (its server closed) before the request was handed to it;
    - dead: has no listener;
    - dropping: takes the request and closes the connection.
    The second endpoint answers."""
    answer = match_pb2.HealthCheckResponse(status=1)
    answering = peer_factory(lambda req: ok(req, answer))
    if first == "dead":
        going, url = None, "tcp://127.0.0.1:%d" % free_port()
    else:
        going = peer_factory(lambda req: DROP if first == "dropping" else ok(req, answer))
        url = going.url
    if first == "gone":
        pick, lost = _rpc.Call.pick, []

        def pick_then_lose(call):
            j = pick(call)
            if j == 0 and not lost:
                lost.append(j)
                going.close()
                wait_for("the first endpoint's connection gone",
                         lambda: not call.pool.connected(0), timeout=5, step=0.01)
            return j

        monkeypatch.setattr(_rpc.Call, "pick", pick_then_lose)
    out = call_on_new_client(asynchronous, [url, answering.url], 1 if going is None else 2,
                             "Reserve", b"")
    if first == "dropping":
        assert isinstance(out, lunamatch.Unavailable), out
        assert out.local and out.attempts == [url]
        assert len(going.requests) == 1 and answering.requests == []
        return
    assert out == answer.SerializeToString(), out
    assert [r.method for r in answering.requests] == [_rpc.METHOD_PREFIX + "Reserve"]
    if first == "gone":
        assert lost == [0] and going.requests == []


@pytest.mark.parametrize("listed", [list, ",".join], ids=["sequence", "string"])
def test_at_most_16_endpoints(listed):
    """As in the C client (LM_CLIENT_ENDPOINTS_MAX): a client of 16
    endpoints opens, one of 17 is a ValueError naming the limit, before
    any socket is opened."""
    urls = ["tcp://127.0.0.1:%d" % (i + 1) for i in range(17)]
    with lunamatch.Client(listed(urls[:16])) as c:
        assert len(c.endpoints) == 16
    with pytest.raises(ValueError, match="^17 endpoints: at most 16$"):
        lunamatch.Client(listed(urls))


@pytest.mark.parametrize("listed", [list, ",".join], ids=["sequence", "string"])
def test_the_endpoint_list_is_at_most_4096_bytes(listed):
    """As in the C client (LM_CLIENT_URLS_MAX, the length of the whole
    list, blanks and commas included): a list of 4096 bytes opens, one of
    4097 is a ValueError naming the limit, before any socket is opened."""
    urls = ["tcp://127.0.0.1:1", "tcp://127.0.0.1:2"]
    pad = 4096 - len(",".join(urls))
    at_limit = [" " * pad + urls[0], urls[1]]
    assert len(",".join(at_limit).encode()) == 4096
    with lunamatch.Client(listed(at_limit)) as c:
        assert c.endpoints == urls
    over = [" " + at_limit[0], urls[1]]
    with pytest.raises(ValueError, match="^endpoint list of 4097 bytes: at most 4096$"):
        lunamatch.Client(listed(over))


#: test_an_endpoint_that_goes_does_not_hold_the_calls_starting_on_it: the
#: request size (nng copies it into its message with the interpreter's lock
#: released, while an abort may land), the calls at once, the rounds, the
#: bound of all rounds, the calls' deadline and how long a call may take
#: once its endpoint went.
GONE_REQUEST = 1 << 20
GONE_CALLS = 8
GONE_ROUNDS = 40
GONE_BUDGET = 60.0
GONE_DEADLINE = 10.0
GONE_WITHIN = 3.0


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "asyncio"])
def test_an_endpoint_that_goes_does_not_hold_the_calls_starting_on_it(peer_factory,
                                                                    asynchronous):
    """Calls keep starting on two endpoints when one of them goes for good
    (its server closes). The calls on it are aborted by the connection's
    loss and move to the other endpoint. An abort that lands while a call
    is starting its send (registered, but nng not yet waiting for a
    connection) was lost: the send then waited for a connection that never
    came until the call's deadline. Every call must end within
    GONE_WITHIN of the loss, and none may fail."""
    answering = peer_factory(lambda req: ok(req, match_pb2.HealthCheckResponse(status=1)))
    answering.sock.recv_max_size = 0
    big = "x" * GONE_REQUEST
    slow, failed = [], []
    end = time.monotonic() + GONE_BUDGET
    rounds = 0
    while rounds < GONE_ROUNDS and time.monotonic() < end and not slow and not failed:
        rounds += 1
        going = Peer(lambda req: ok(req, match_pb2.HealthCheckResponse(status=1)))
        going.sock.recv_max_size = 0
        going_url = going.url
        gone_at = [None]

        def go():
            gone_at[0] = time.monotonic()
            going.close()

        timer = threading.Timer(0.05 + 0.1 * random.random(), go)
        stop = [False]

        def record(t):
            took = time.monotonic() - max(t, gone_at[0] or t)
            if gone_at[0] is not None and took > GONE_WITHIN:
                slow.append(round(took, 2))

        cls = lunamatch.AsyncClient if asynchronous else lunamatch.Client
        c = cls([going_url, answering.url], timeout=GONE_DEADLINE,
                max_request_bytes=2 * GONE_REQUEST)
        try:
            deadline = time.monotonic() + 5
            while len(c.connected()) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert len(c.connected()) == 2
            if asynchronous:
                async def one():
                    while not stop[0]:
                        t = time.monotonic()
                        try:
                            await c.check(big)
                        except lunamatch.RpcError as e:
                            failed.append(e)
                        record(t)

                async def main():
                    tasks = [asyncio.ensure_future(one()) for _ in range(GONE_CALLS)]
                    timer.start()
                    while gone_at[0] is None:
                        await asyncio.sleep(0.01)
                    await asyncio.sleep(0.1)
                    stop[0] = True
                    await asyncio.wait_for(asyncio.gather(*tasks), GONE_DEADLINE * 2)

                asyncio.run(main())
            else:
                def work():
                    while not stop[0]:
                        t = time.monotonic()
                        try:
                            c.check(big)
                        except lunamatch.RpcError as e:
                            failed.append(e)
                        record(t)

                threads = [threading.Thread(target=work) for _ in range(GONE_CALLS)]
                for t in threads:
                    t.start()
                timer.start()
                timer.join()
                time.sleep(0.1)
                stop[0] = True
                for t in threads:
                    t.join(GONE_DEADLINE * 2)
        finally:
            stop[0] = True
            timer.cancel()
            if timer.is_alive():
                timer.join()
            if gone_at[0] is None:
                go()
            c.close()
    assert not slow and not failed, (rounds, slow, failed[:3])


def test_a_cancelled_call_is_cancelled_even_when_its_answer_is_in(peer_factory):
    """A task cancelled while its call's answer is in but not yet taken
    (nng has completed the receive, the event loop has not yet run that
    completion) ends cancelled: the cancellation is not swallowed, so an
    asyncio.timeout or TaskGroup around the call still takes effect."""
    asked, go = threading.Event(), threading.Event()

    def reply(req):
        asked.set()
        go.wait(10)
        return ok(req, match_pb2.HealthCheckResponse(status=1))

    p = peer_factory(reply)

    async def main():
        async with lunamatch.AsyncClient(p.url, timeout=5.0) as c:
            while not c.connected():
                await asyncio.sleep(0.01)
            task = asyncio.ensure_future(c.check())
            while not asked.is_set():
                await asyncio.sleep(0.001)
            await asyncio.sleep(0.1)  # the call waits for its answer
            # The loop is held while the answer arrives and its completion
            # is queued; the cancellation comes before the loop runs it.
            go.set()
            time.sleep(0.3)
            assert task.cancel()
            try:
                out = await task
            except asyncio.CancelledError:
                return "cancelled"
            return out

    assert asyncio.run(asyncio.wait_for(main(), 30)) == "cancelled"


class HoldingPeer:
    """A REP socket that takes each request on a context of its own, so that
    it can leave some unanswered while it answers others: a request for a
    posting id that starts with "hold" waits for release(), "unavailable"
    is answered UNAVAILABLE ("draining"), and so is the first request for
    "unavailable-once", any other id is echoed. Every request's posting id
    and connection (pipe id) are recorded."""

    def __init__(self):
        self.url = "tcp://127.0.0.1:%d" % free_port()
        self.sock = pynng.Rep0(listen=self.url, recv_timeout=10000)
        self.lock = threading.Lock()
        self.seen = []  # (posting id, pipe id)
        self.held = []  # (context, request id, posting id)
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        for _ in range(32):
            ctx = self.sock.new_context()
            try:
                msg = ctx.recv_msg()
            except (pynng.Timeout, pynng.Closed):
                with contextlib.suppress(pynng.Closed):  # with the socket
                    ctx.close()
                return
            req = rpc_pb2.RpcRequest.FromString(msg.bytes)
            pid = match_pb2.GetPostingRequest.FromString(req.payload).id
            pipe = pynng.lib.nng_pipe_id(pynng.lib.nng_msg_get_pipe(msg._nng_msg))
            with self.lock:
                unavailable = pid == "unavailable" or (
                    pid == "unavailable-once" and all(p != pid for p, _ in self.seen))
                self.seen.append((pid, pipe))
                if pid.startswith("hold"):
                    self.held.append((ctx, req.request_id, pid))
                    continue
            if unavailable:
                ctx.send(rpc_pb2.RpcResponse(request_id=req.request_id,
                                             code=rpc_pb2.UNAVAILABLE,
                                             message="draining").SerializeToString())
            else:
                ctx.send(self.posting(req.request_id, pid))
            ctx.close()

    @staticmethod
    def posting(request_id, pid):
        return ok(rpc_pb2.RpcRequest(request_id=request_id),
                  match_pb2.GetPostingResponse(posting={"id": pid}))

    def release(self):
        """Answers every request held so far, echoing its posting id."""
        with self.lock:
            held, self.held = self.held, []
        for ctx, request_id, pid in held:
            ctx.send(self.posting(request_id, pid))
            ctx.close()

    def count(self, pid):
        with self.lock:
            return sum(1 for p, _ in self.seen if p == pid)

    def pipe(self, pid):
        """The connection of the first request for pid, or None."""
        return next(iter(self.pipes(pid)), None)

    def pipes(self, pid):
        """The connections of the requests for pid, in order."""
        with self.lock:
            return [pipe for p, pipe in self.seen if p == pid]

    def close(self):
        self.sock.close()
        self.thread.join(5)


def test_unavailable_spares_the_calls_in_flight_on_its_connection():
    """Threads sharing a client share its connection to an endpoint. An
    UNAVAILABLE answer on it does not cut the other calls waiting there:
    each gets its own answer, to the one request it sent (a read-only
    method is not run twice, one not listed does not fail with an outcome
    unknown). Meanwhile no call starts on that connection; once they have
    ended, the connection is closed and the next call goes over a new one.
    Here they end well within the grace after which the connection is
    closed under them (see
    test_unavailable_closes_its_connection_within_a_grace): the UNAVAILABLE
    call, of a method not listed, is not repeated, and the held calls are
    answered as soon as it returns."""
    p = HoldingPeer()
    results = {}

    def one(name, fn):
        try:
            results[name] = fn()
        except Exception as e:  # noqa: BLE001 - reported below
            results[name] = e

    try:
        with lunamatch.Client(p.url, timeout=10.0) as c:
            connected(c, 1)
            assert c.get_posting("job-0").id == "job-0"
            first = p.pipe("job-0")
            threads = [
                threading.Thread(target=one, args=(
                    "read-only", lambda: c.get_posting("hold-read-only").id)),
                threading.Thread(target=one, args=(
                    "unlisted", lambda: match_pb2.GetPostingResponse.FromString(
                        c.call("DeletePosting",
                               match_pb2.GetPostingRequest(id="hold-unlisted"))
                    ).posting.id)),
            ]
            for t in threads:
                t.start()
            wait_for("the held requests", lambda: p.pipe("hold-read-only") is not None
                     and p.pipe("hold-unlisted") is not None, timeout=5.0, step=0.01)
            assert p.pipe("hold-read-only") == p.pipe("hold-unlisted") == first

            with pytest.raises(lunamatch.Unavailable) as e:
                c.call("DeletePosting", match_pb2.GetPostingRequest(id="unavailable"),
                       timeout=5.0)
            assert not e.value.local and e.value.message == "draining"
            assert p.pipe("unavailable") == first
            # The held calls still wait for their answers, each sent once.
            assert results == {}
            assert p.count("hold-read-only") == p.count("hold-unlisted") == 1
            assert p.count("unavailable") == 1

            p.release()
            for t in threads:
                t.join(15)
            assert results == {"read-only": "hold-read-only",
                               "unlisted": "hold-unlisted"}
            assert p.count("hold-read-only") == p.count("hold-unlisted") == 1

            # The UNAVAILABLE still leads to a fresh connection.
            assert c.get_posting("job-1").id == "job-1"
            assert p.pipe("job-1") not in (None, first)
    finally:
        p.release()
        p.close()


def test_unavailable_closes_its_connection_within_a_grace():
    """The wait for the calls in flight on a connection that answered
    UNAVAILABLE is bounded: with one endpoint (a draining replica answers
    its calls in flight for up to 10 s), the connection is closed under the
    calls still in flight on it once _rpc.CLOSING_GRACE has passed, and
    they lose it as they would otherwise (a call of a method not listed
    ends with the loss, sent once). A call made right after the
    UNAVAILABLE answer is answered on the fresh connection within about
    the grace, and so is the repeat of a read-only call answered
    UNAVAILABLE, which waits for the fresh connection REDIAL_WAIT only.
    The held requests would be held far longer."""
    p = HoldingPeer()
    held = {}
    bound = _rpc.CLOSING_GRACE + 2.0

    def hold(c, pid):  # a call of a method not listed, held by the peer
        try:
            held[pid] = c.call("DeletePosting", match_pb2.GetPostingRequest(id=pid))
        except Exception as e:  # noqa: BLE001 - checked below
            held[pid] = e

    def cut(c, pid, on, since):
        """Starts a held call, waits until it is on connection on, and
        returns a function checking that it lost that connection before
        since + bound."""
        t = threading.Thread(target=hold, args=(c, pid))
        t.start()
        wait_for("the held request", lambda: p.pipe(pid) is not None, timeout=5.0,
                 step=0.01)
        assert p.pipe(pid) == on

        def check():
            t.join(max(0.0, since() + bound - time.monotonic()))
            assert not t.is_alive(), "%s still in flight" % pid
            assert isinstance(held[pid], lunamatch.Unavailable) and held[pid].local, held
            assert p.count(pid) == 1
        return check

    try:
        with lunamatch.Client(p.url, timeout=10.0) as c:
            connected(c, 1)
            assert c.get_posting("job-0").id == "job-0"
            first = p.pipe("job-0")
            t0 = [0.0]

            # A call made right after the UNAVAILABLE answer.
            check = cut(c, "hold-1", first, lambda: t0[0])
            t0[0] = time.monotonic()
            with pytest.raises(lunamatch.Unavailable) as e:
                c.call("DeletePosting", match_pb2.GetPostingRequest(id="unavailable"),
                       timeout=5.0)
            assert not e.value.local
            assert c.get_posting("job-1", timeout=5.0).id == "job-1"
            assert time.monotonic() - t0[0] < bound
            second = p.pipe("job-1")
            assert second not in (None, first)
            check()

            # The repeat of the call answered UNAVAILABLE.
            check = cut(c, "hold-2", second, lambda: t0[0])
            t0[0] = time.monotonic()
            assert c.get_posting("unavailable-once", timeout=5.0).id == "unavailable-once"
            assert time.monotonic() - t0[0] < bound
            pipes = p.pipes("unavailable-once")
            assert len(pipes) == 2 and pipes[0] == second and pipes[1] != second
            check()
    finally:
        p.release()
        p.close()


@pytest.mark.parametrize("asynchronous", [False, True])
def test_unavailable_marks_its_connection_before_the_call_leaves_it(monkeypatch,
                                                                   asynchronous):
    """A call answered UNAVAILABLE marks its connection while it still
    counts as in flight on the endpoint, as the C client does: a call of
    another thread that looks for a connection just as the first leaves the
    endpoint does not get the one that answered UNAVAILABLE."""
    p = HoldingPeer()
    boarded = []
    leave = _rpc.Pool.leave

    def leave_then_board(pool, j):
        leave(pool, j)
        since = pool.board(j)  # another thread, just then
        boarded.append(since is not None)
        if since is not None:
            leave(pool, j)

    async def main(c):
        connected(c, 1)
        assert (await c.get_posting("job-0")).id == "job-0"
        monkeypatch.setattr(_rpc.Pool, "leave", leave_then_board)
        with pytest.raises(lunamatch.Unavailable) as e:
            await c.call("DeletePosting", match_pb2.GetPostingRequest(id="unavailable"))
        return e.value

    try:
        if asynchronous:
            async def run():
                async with lunamatch.AsyncClient(p.url, timeout=5.0) as c:
                    return await main(c)
            err = asyncio.run(asyncio.wait_for(run(), 30))
        else:
            class Sync:  # the client's calls, awaitable as main() awaits them
                def __init__(self, c):
                    self.c = c

                def connected(self):
                    return self.c.connected()

                def __getattr__(self, name):
                    fn = getattr(self.c, name)

                    async def call(*args, **kw):
                        return fn(*args, **kw)
                    return call

            with lunamatch.Client(p.url, timeout=5.0) as c:
                err = asyncio.run(main(Sync(c)))
        assert not err.local and err.message == "draining"
        assert boarded == [False]
    finally:
        monkeypatch.undo()
        p.release()
        p.close()


def test_a_section_ended_on_another_thread_is_counted_out():
    """A section (Pool.run) ends by its token, whichever thread ends it, as
    when the garbage collector finishes a call's coroutine elsewhere: it was
    looked up by the ending thread's id (a KeyError, and the section stayed
    counted, so that close() never closed the sockets)."""
    c = lunamatch.Client("tcp://127.0.0.1:1")
    pool = c._pool
    token = pool.enter()
    assert token is not None
    t = threading.Thread(target=pool.exit, args=(token,))
    t.start()
    t.join(5)
    assert not pool._inside
    t0 = time.monotonic()
    c.close()
    assert time.monotonic() - t0 < 1
    assert pool not in _rpc._open_pools  # its sockets are closed
    assert pool.enter() is None  # no section starts once closed


def test_close_drops_a_section_count_an_interrupt_left_behind():
    """A KeyboardInterrupt can land between a section's count and its start
    (or its end and the count's decrement), leaving the count of the main
    thread behind; close() on that thread, as in the except block of the
    interrupted call, drops it and closes the sockets (it deferred the
    close to a section that would never end: the sockets stayed open)."""
    c = lunamatch.Client("tcp://127.0.0.1:1")
    pool = c._pool
    assert pool.enter() is not None  # never exited: the interrupt's leftover
    t0 = time.monotonic()
    c.close()
    assert time.monotonic() - t0 < 1
    assert pool not in _rpc._open_pools  # its sockets are closed
    assert not pool._inside
