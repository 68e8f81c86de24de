"""A replica that dies while it holds a call: the call moves to another
endpoint within its deadline; with a single endpoint it fails at once with
a local UNAVAILABLE. The dying replica is a real lunamatch-match, frozen (SIGSTOP)
with the request in hand and then killed (SIGKILL)."""
import asyncio
import threading
import time
import uuid

import pytest

import lunamatch

from conftest import SERVING, Service, free_port, side_env, wait_for

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


def connected(c, n):
    wait_for("%d endpoints connected" % n, lambda: len(c.connected()) == n, timeout=5)


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
