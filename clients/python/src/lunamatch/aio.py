"""The asyncio client of lunamatch.v1.MatchService.

    async with lunamatch.AsyncClient("tcp://127.0.0.1:7700") as c:
        resp = await c.match_jobs("cand-42", top_k=5)

Every method is a coroutine with the same arguments and results as the
synchronous Client. Calls may run concurrently on one client (each has its
own nng context). Cancelling a call's task aborts its request.

An answer larger than INLINE_DECODE_BYTES is checked and decoded on a
thread of the client's own, so that the event loop runs other tasks
meanwhile; close() lets that thread end.
"""
import asyncio
import concurrent.futures

import pynng

from lunamatch import _rpc

#: The largest answer checked (its decode cost, _rpc.decode_cost_ok) and
#: decoded on the event loop; a larger one is on the client's decoding
#: thread. Measured with CPython 3.11 and protobuf's upb decoder: the
#: densest answers (MatchJobs at FULL, 100 skills a match) take some 20 us
#: per KiB, 1.3 ms at 64 KiB, 5 ms at 256 KiB, 55 ms for top_k 1000
#: (2.6 MiB); answers with names of ordinary length some 12 us per KiB
#: (20 ms for top_k 1000 at FULL, 1.5 MiB); MatchJobs answers under 16 KiB,
#: whose cost is not walked, some 2 us per KiB. A hop to the thread and
#: back takes some 0.1 ms. So an answer decoded on the loop holds it about
#: a millisecond at most, and the common ones (top_k 10 at FULL with 20
#: skills a match is some 16 KiB) do not pay for the hop.
INLINE_DECODE_BYTES = 64 << 10


class AsyncClient(_rpc.ClientBase):
    """Asyncio MatchService client over several endpoints; see
    lunamatch._rpc.ClientBase for the arguments and Methods for the calls.

    Answers over INLINE_DECODE_BYTES are decoded on a single thread of the
    client's. The cost check, Python code, lets the loop have the GIL every
    switch interval (sys.getswitchinterval(), 5 ms); protobuf's decoder
    keeps the GIL while it parses, a tenth of the work (some 6 ms of the 55
    of the densest top_k 1000 answer), and the loop waits that long. One
    thread, since more would decode no faster under the GIL and each would
    take it from the loop in turn: four such answers at once held the loop
    up to 16 ms with one thread, 60 ms with four. close() lets the thread
    end; a client dropped unclosed lets it end when collected."""

    def __init__(self, endpoints=None, **options):
        super().__init__(endpoints, **options)
        self._decoder = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="lunamatch-decode")

    async def _invoke(self, method, request, unwrap, timeout, metadata):
        call = self._call(method, request, unwrap, timeout, metadata)
        try:
            while True:
                j = call.pick()
                if j is None:
                    call.give_up()
                    await asyncio.sleep(_rpc.CONNECT_POLL)
                    continue
                with _rpc.Flight(self._pool, j) as f:
                    try:
                        await f.asend(call.envelope(), call.send_ms(), call.since)
                    except (pynng.Timeout, pynng.ConnectionReset):
                        call.not_sent()
                        continue
                    try:
                        msg = await f.arecv(call.wait_ms())
                    except pynng.Timeout:
                        raise call.no_answer() from None
                    except pynng.ConnectionReset:
                        call.connection_lost()
                        continue
                    out = await self._answer(call, msg)
                if out is not None:
                    return out
        except pynng.Closed:
            raise call.closed() from None

    async def _answer(self, call: _rpc.Call, msg: pynng.Message):
        """call.answer(msg), with an answer over INLINE_DECODE_BYTES decoded
        on the decoding thread: the same result or error. A cancellation
        ends the call at once; the decoding, which changes nothing in the
        call, runs to its end on that thread and its outcome is dropped."""
        raw = msg.bytes
        if len(raw) <= INLINE_DECODE_BYTES:
            decoded = call.decode(raw)
        else:
            try:
                fut = asyncio.get_running_loop().run_in_executor(
                    self._decoder, call.decode, raw)
            except RuntimeError:
                # close() came after the answer: the thread takes no more
                # work, and the answer is decoded here.
                decoded = call.decode(raw)
            else:
                decoded = await fut
        return call.settle(msg, *decoded)

    def close(self) -> None:
        """Closes every socket (see ClientBase.close); the decoding thread
        ends once the decoding it has, if any, is done. Idempotent."""
        super().close()
        self._decoder.shutdown(wait=False)

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        self.close()
