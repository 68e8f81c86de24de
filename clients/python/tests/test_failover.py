"""A replica that dies while it holds a call: the call moves to another
endpoint within its deadline; with a single endpoint it fails soon after
with a local UNAVAILABLE. The dying replica is a real lunamatch-match, frozen
(SIGSTOP) with the request in hand and then killed (SIGKILL).

A single endpoint in front of several replicas (a Kubernetes Service) whose
connection reached a draining replica: the call is answered by a ready one
over a fresh connection."""
import asyncio
import select
import socket
import threading
import time
import uuid

import pynng
import pytest

import lunamatch
from lunamatch.v1 import rpc_pb2

from conftest import SERVING, Service, connected, free_port, side_env, wait_for

KILL_AFTER = 0.4  # seconds between the call and the kill
# The clients' deadline, and the bound a call ended by the kill stays under:
# far apart, so that a loaded machine cannot make the one look like the other.
DEADLINE = 30.0
KILLED_WITHIN = DEADLINE / 2


@pytest.fixture
def doomed(stack):
    name = "doomed-" + uuid.uuid4().hex[:6]
    url = "tcp://127.0.0.1:%d" % free_port()
    svc = Service(name, ["lunamatch-match", "--url", url,
                         "--http", "127.0.0.1:%d" % free_port()],
                  side_env(stack.env, stack.tmp, name), stack.tmp)
    try:
        with lunamatch.Client(url, timeout=1.0) as c:
            wait_for(name + " serving", lambda: c.check().status == SERVING)
        yield svc, url
    finally:
        svc.stop()


def freeze_then_kill(svc):
    """Freezes svc now and kills it KILL_AFTER seconds later."""
    svc.pause()
    t = threading.Timer(KILL_AFTER, svc.proc.kill)
    t.start()
    return t


def test_call_moves_to_another_endpoint(stack, doomed):
    svc, url = doomed
    with lunamatch.Client([url, stack.url], timeout=DEADLINE) as c:
        connected(c, 2)
        t = time.monotonic()  # before the kill's timer starts
        timer = freeze_then_kill(svc)
        h = c.check()  # the first call of a client goes to the first endpoint
        took = time.monotonic() - t
        timer.join()
    assert h.status == SERVING
    # It waited on the frozen replica until the kill, then moved at once.
    assert KILL_AFTER <= took < KILLED_WITHIN


def test_single_endpoint_fails_unavailable(doomed):
    svc, url = doomed
    with lunamatch.Client(url, timeout=DEADLINE) as c:
        connected(c, 1)
        t = time.monotonic()  # before the kill's timer starts
        timer = freeze_then_kill(svc)
        with pytest.raises(lunamatch.Unavailable) as e:
            c.check()
        took = time.monotonic() - t
        timer.join()
    assert e.value.local and "lost before the answer" in e.value.message
    # Waited a moment for a fresh connection (none came), not the deadline.
    assert KILL_AFTER <= took < KILLED_WITHIN


def test_async_call_moves_to_another_endpoint(stack, doomed):
    svc, url = doomed

    async def main():
        async with lunamatch.AsyncClient([url, stack.url], timeout=DEADLINE) as c:
            connected(c, 2)
            t = time.monotonic()  # before the kill's timer starts
            timer = freeze_then_kill(svc)
            h = await c.check()
            took = time.monotonic() - t
            timer.join()
            return h, took

    h, took = asyncio.run(main())
    assert h.status == SERVING and KILL_AFTER <= took < KILLED_WITHIN


class Front:
    """A TCP front on 127.0.0.1 standing for a Service: the first connection
    goes to a replica that drains (an nng REP answering every request
    UNAVAILABLE, as lunamatch-match does while draining), later ones to the
    ready server. Threads end within a second of stop()."""

    def __init__(self, ready_url):
        self.ready = ready_url[len("tcp://"):].rsplit(":", 1)
        self.draining_url = "tcp://127.0.0.1:%d" % free_port()
        self.rep = pynng.Rep0(listen=self.draining_url, recv_timeout=200)
        self.drained = 0
        self.conns = 0
        self.lsock = socket.create_server(("127.0.0.1", 0))
        self.lsock.settimeout(0.2)
        self.url = "tcp://127.0.0.1:%d" % self.lsock.getsockname()[1]
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._drain, daemon=True),
                        threading.Thread(target=self._accept, daemon=True)]
        for t in self.threads:
            t.start()

    def _drain(self):
        while not self.stopping.is_set():
            try:
                req = rpc_pb2.RpcRequest.FromString(self.rep.recv())
            except pynng.Timeout:
                continue
            self.drained += 1
            self.rep.send(rpc_pb2.RpcResponse(
                request_id=req.request_id, code=rpc_pb2.UNAVAILABLE,
                message="server is draining; retry elsewhere").SerializeToString())

    def _accept(self):
        while not self.stopping.is_set():
            try:
                c, _ = self.lsock.accept()
            except socket.timeout:
                continue
            host, port = (("127.0.0.1", self.draining_url.rsplit(":", 1)[1])
                          if self.conns == 0 else self.ready)
            self.conns += 1
            b = socket.create_connection((host, int(port)), timeout=5)
            t = threading.Thread(target=self._pump, args=(c, b), daemon=True)
            t.start()
            self.threads.append(t)

    def _pump(self, a, b):
        socks = [a, b]
        try:
            while not self.stopping.is_set():
                r, _, _ = select.select(socks, [], [], 0.2)
                for s in r:
                    data = s.recv(65536)
                    if not data:
                        return
                    (b if s is a else a).sendall(data)
        except OSError:
            return
        finally:
            a.close()
            b.close()

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(timeout=5)
        self.lsock.close()
        self.rep.close()


@pytest.mark.parametrize("asynchronous", [False, True])
def test_single_endpoint_leaves_a_draining_replica(stack, asynchronous):
    front = Front(stack.url)
    try:
        if asynchronous:
            async def main():
                async with lunamatch.AsyncClient(front.url, timeout=DEADLINE) as c:
                    connected(c, 1)
                    return [await c.check() for _ in range(3)]
            got = asyncio.run(main())
        else:
            with lunamatch.Client(front.url, timeout=DEADLINE) as c:
                connected(c, 1)
                got = [c.check() for _ in range(3)]
    finally:
        front.stop()
    assert [h.status for h in got] == [SERVING] * 3
    # The first call met the draining replica once; then a fresh connection.
    assert front.drained == 1 and front.conns == 2


def test_concurrent_calls_leave_a_draining_replica(stack):
    """Eight calls in flight on the connection to a draining replica: each
    is answered by the ready server, and the client keeps counting only the
    live connection (a dead one would hold later calls to their deadline)."""
    front = Front(stack.url)
    results, errors = [], []
    try:
        with lunamatch.Client(front.url, timeout=DEADLINE) as c:
            connected(c, 1)

            def one():
                try:
                    results.append(c.check().status)
                except Exception as e:  # noqa: BLE001 - reported below
                    errors.append(repr(e))
            threads = [threading.Thread(target=one) for _ in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=DEADLINE)
            assert errors == [] and results == [SERVING] * 8
            assert c.connected() == [front.url]
            t0 = time.monotonic()
            for _ in range(4):
                assert c.check(timeout=2.0).status == SERVING
            assert time.monotonic() - t0 < 2.0
    finally:
        front.stop()
    assert front.drained >= 1
