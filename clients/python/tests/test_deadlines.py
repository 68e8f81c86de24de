"""When a call waits for a connection: its deadline still bounds it, the
server gets the time left once the request goes out, and a connection that
goes while the request waits for it sends the call to another endpoint.
The servers are plain nng REP sockets behind a TCP gate that delays, holds
or resets connections, which a real server cannot be made to do on cue."""
import asyncio
import select
import socket
import struct
import threading
import time

import pynng
import pytest

import lunamatch
from lunamatch.v1 import match_pb2, rpc_pb2

from conftest import connected, free_port

GRACE = 0.25  # the clients' wait beyond the deadline for the server's answer
SLACK = 0.15  # scheduling on a busy machine


class Backend:
    """A REP socket answering each request with reply(request) (None: no
    answer); keeps the decoded requests."""

    def __init__(self, reply):
        self.url = "tcp://127.0.0.1:%d" % free_port()
        self.sock = pynng.Rep0(listen=self.url, recv_timeout=200)
        self.reply = reply
        self.requests = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopping.is_set():
            try:
                req = rpc_pb2.RpcRequest.FromString(self.sock.recv())
            except pynng.Timeout:
                continue
            except pynng.Closed:
                return
            self.requests.append(req)
            out = self.reply(req)
            if out is not None:
                self.sock.send(out)

    def close(self):
        self.stopping.set()
        self.thread.join(5)
        self.sock.close()


class Gate:
    """A TCP front of a Backend on 127.0.0.1. Connection k is passed through
    after delays[k] seconds (at once past the list); hold() stops reading
    what the clients send, reset() resets every connection and refuses new
    ones. Small socket buffers, so that a held connection fills up soon."""

    def __init__(self, backend, delays=()):
        self.backend = int(backend.url.rsplit(":", 1)[1])
        self.delays = list(delays)
        self.conns = 0
        self.held = threading.Event()
        self.resetting = threading.Event()
        self.stopping = threading.Event()
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        self.lsock.bind(("127.0.0.1", free_port()))
        self.lsock.listen(8)
        self.lsock.settimeout(0.05)
        self.url = "tcp://127.0.0.1:%d" % self.lsock.getsockname()[1]
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self):
        while not (self.stopping.is_set() or self.resetting.is_set()):
            try:
                c, _ = self.lsock.accept()
            except socket.timeout:
                continue
            delay = self.delays[self.conns] if self.conns < len(self.delays) else 0
            self.conns += 1
            t = threading.Thread(target=self._pump, args=(c, delay), daemon=True)
            t.start()
            self.threads.append(t)
        self.lsock.close()

    def _pump(self, a, delay):
        end = time.monotonic() + delay
        while time.monotonic() < end and not self.stopping.is_set():
            time.sleep(0.01)
        b = socket.create_connection(("127.0.0.1", self.backend), timeout=5)
        try:
            while not self.stopping.is_set():
                if self.resetting.is_set():
                    a.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return
                socks = [b] if self.held.is_set() else [a, b]
                for s in select.select(socks, [], [], 0.02)[0]:
                    data = s.recv(65536)
                    if not data:
                        return
                    (b if s is a else a).sendall(data)
        except OSError:
            return
        finally:
            a.close()
            b.close()

    def hold(self):
        self.held.set()

    def reset(self):
        self.resetting.set()

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(5)


@pytest.fixture
def make():
    """make(Backend or Gate, *args): started now, stopped after the test."""
    made = []

    def start(cls, *args):
        x = cls(*args)
        made.append(x)
        return x

    yield start
    for x in reversed(made):
        x.stop() if isinstance(x, Gate) else x.close()


def answer(req, code=rpc_pb2.OK, msg=None):
    return rpc_pb2.RpcResponse(
        request_id=req.request_id, code=code, message="" if code == rpc_pb2.OK else "no",
        payload=(msg or match_pb2.HealthCheckResponse(status=1)).SerializeToString(),
    ).SerializeToString()


def run(result):
    """The result of a call of either client."""
    return asyncio.run(result) if asyncio.iscoroutine(result) else result


@pytest.mark.parametrize("asynchronous", [False, True])
def test_deadline_bounds_a_wait_for_a_fresh_connection(make, asynchronous):
    """One endpoint answers UNAVAILABLE; the fresh connection comes up 0.6 s
    later and the server then never answers: the call ends at its deadline
    plus the grace, and the repeat carries the time left when it was sent."""
    asked = []

    def reply(req):
        asked.append(req)
        return answer(req, rpc_pb2.UNAVAILABLE) if len(asked) == 1 else None

    gate = make(Gate, make(Backend, reply), [0, 0.6])
    c = (lunamatch.AsyncClient if asynchronous else lunamatch.Client)(gate.url, timeout=1.0)
    try:
        connected(c, 1)
        t = time.monotonic()
        with pytest.raises(lunamatch.DeadlineExceeded):
            run(c.check())
        took = time.monotonic() - t
    finally:
        c.close()
    assert took <= 1.0 + GRACE + SLACK
    assert [r.request_id for r in asked] == [asked[0].request_id] * 2
    assert asked[1].timeout_ms <= 1000 - 500  # sent once the connection was up


@pytest.mark.parametrize("asynchronous", [False, True])
def test_send_waiting_on_a_lost_connection_moves_on(make, asynchronous):
    """Endpoint A stops reading while a large request fills its connection,
    so a small call to A waits for the connection to take it; the
    connection is then reset (and A refuses new ones): the small call goes
    to B at once instead of waiting out its deadline."""
    a = make(Backend, lambda req: None)
    gate = make(Gate, a)
    b = make(Backend, answer)
    cls = lunamatch.AsyncClient if asynchronous else lunamatch.Client
    c = cls([gate.url, b.url], timeout=5.0, max_request_bytes=16 << 20)
    try:
        connected(c, 2)
        gate.hold()

        async def calls():
            big = asyncio.ensure_future(c.call("Check", b"x" * (10 << 20)))  # to A
            await asyncio.sleep(0.1)
            await c.check()  # the next endpoint in turn: B
            small = asyncio.ensure_future(c.check())  # A's turn
            await asyncio.sleep(0.2)
            gate.reset()
            t = time.monotonic()
            h = await small
            took = time.monotonic() - t
            await asyncio.gather(big, return_exceptions=True)
            return h, took

        if asynchronous:
            h, took = asyncio.run(calls())
        else:
            big = threading.Thread(target=c.call, args=("Check", b"x" * (10 << 20)),
                                   daemon=True)
            big.start()
            time.sleep(0.1)
            c.check()
            threading.Timer(0.2, gate.reset).start()
            t = time.monotonic()
            h = c.check()
            took = time.monotonic() - t
            big.join(10)
    finally:
        c.close()
    assert h.status == 1 and took < 2.0
