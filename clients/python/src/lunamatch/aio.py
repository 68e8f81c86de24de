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
            sock = call.pick()
            if sock is None:
                call.give_up()
                await asyncio.sleep(_rpc.CONNECT_POLL)
                continue
            with sock.new_context() as ctx:
                _rpc.set_context_timeouts(ctx, call.send_ms(), call.wait_ms())
                sent = False
                try:
                    await ctx.asend(call.envelope())
                    sent = True
                    msg = await ctx.arecv_msg()
                except pynng.Timeout:
                    raise call.timed_out(sent) from None
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
