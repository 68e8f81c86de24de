"""Closing a client while other threads (or tasks) have calls in flight on
a real lunamatch-match.

No nng operation on a call's context may overlap the close of its socket:
with the nng that pynng bundles, that hung nng_close or aborted the process
(a panic in nni_ctx_rele, from nng_ctx_recv or nng_ctx_close). The races
run in a child process, so that an abort fails the test instead of ending
the suite, and every round has a watchdog, so that a hang fails it too.
"""
import subprocess
import sys

import pytest

#: The child: rounds of CALLERS callers sharing a new client, which is
#: closed after a random 0-50 ms, from the main thread (sync), from another
#: thread or from a task of the loop (asyncio), until ROUNDS rounds or
#: BUDGET seconds. A round that does not end within WATCHDOG seconds ends
#: the process (exit 1, with every thread's stack); nng's panic aborts it.
#: Every call must end with its answer, a local Cancelled (closed while in
#: flight) or RuntimeError (made after the close); in the loop, close()
#: must not wait for the tasks it interrupts, which cannot run meanwhile.
_CHILD = r"""
import asyncio, faulthandler, random, sys, threading, time
import lunamatch

url, mode = sys.argv[1], sys.argv[2]
ROUNDS, BUDGET, WATCHDOG, CALLERS = 150, 20.0, 15, 8
bad = []


def judge(e):
    if isinstance(e, lunamatch.Cancelled) and e.local:
        return
    if isinstance(e, RuntimeError) and str(e) == "client is closed":
        return
    bad.append(repr(e))


def sync_round():
    c = lunamatch.Client(url, timeout=2)

    def run():
        for _ in range(50):
            try:
                c.check()
            except Exception as e:  # noqa: BLE001 - judged
                judge(e)
                return

    ts = [threading.Thread(target=run) for _ in range(CALLERS)]
    for t in ts:
        t.start()
    time.sleep(random.random() * 0.05)
    c.close()
    for t in ts:
        t.join()


async def async_round():
    c = lunamatch.AsyncClient(url, timeout=2)

    async def run():
        for _ in range(50):
            try:
                await c.check()
            except Exception as e:  # noqa: BLE001 - judged
                judge(e)
                return

    tasks = [asyncio.ensure_future(run()) for _ in range(CALLERS)]
    delay = random.random() * 0.05
    if mode == "async-thread":
        closer = threading.Timer(delay, c.close)
        closer.start()
    else:
        await asyncio.sleep(delay)
        t0 = time.monotonic()
        c.close()
        if time.monotonic() - t0 > 1.0:
            bad.append("close() in the loop took %.1f s" % (time.monotonic() - t0))
    await asyncio.gather(*tasks)
    if mode == "async-thread":
        closer.join()
    c.close()


end = time.monotonic() + BUDGET
rounds = 0
while rounds < ROUNDS and time.monotonic() < end:
    faulthandler.dump_traceback_later(WATCHDOG, exit=True)
    if mode == "sync":
        sync_round()
    else:
        asyncio.run(async_round())
    faulthandler.cancel_dump_traceback_later()
    rounds += 1
print("rounds", rounds, "bad", bad[:5])
"""


@pytest.mark.parametrize("mode", ["sync", "async-thread", "async-loop"])
def test_close_while_calls_are_in_flight(stack, mode):
    """Client closed by the main thread while 8 threads call check(); an
    AsyncClient closed by another thread, or by a task of its loop, while
    8 tasks do. Each of up to 150 rounds must end (no hang, no abort), and
    each call with its answer, a local Cancelled or RuntimeError."""
    try:
        out = subprocess.run([sys.executable, "-c", _CHILD, stack.url, mode],
                             capture_output=True, text=True, timeout=100)
    except subprocess.TimeoutExpired:
        pytest.fail("the process hung")
    assert out.returncode == 0, (out.returncode, out.stdout, out.stderr[-3000:])
    assert out.stdout.startswith("rounds ") and out.stdout.endswith(" bad []\n"), (
        out.stdout, out.stderr[-3000:])
