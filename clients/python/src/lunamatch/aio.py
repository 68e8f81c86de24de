"""The asyncio client of lunamatch.v1.MatchService.

    async with lunamatch.AsyncClient("tcp://127.0.0.1:7700") as c:
        resp = await c.match_jobs("cand-42", top_k=5)

Every method is a coroutine with the same arguments and results as the
synchronous Client. Calls may run concurrently on one client (each has its
own nng context). Cancelling a call's task aborts its request.
"""
import asyncio

import pynng

from lunamatch import _rpc


class AsyncClient(_rpc.ClientBase):
    """Asyncio MatchService client over several endpoints; see
    lunamatch._rpc.ClientBase for the arguments and Methods for the calls."""

    async def _invoke(self, method, request, unwrap, timeout, metadata):
        call = self._call(method, request, unwrap, timeout, metadata)
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
            out = call.answer(msg)
            if out is not None:
                return out

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        self.close()
