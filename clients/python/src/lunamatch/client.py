"""The synchronous client of lunamatch.v1.MatchService.

    with lunamatch.Client("tcp://10.0.0.5:7700,tcp://10.0.0.6:7700") as c:
        for m in c.match_jobs("cand-42", top_k=5).matches:
            print(m.rank, m.job_id, m.score)

Thread-safe: every call runs on its own nng context, so threads may share
one client. close() may come while calls are in flight: each fails at once
with a local Cancelled, whether on a connection or still waiting for one;
close() returns once the sockets are closed, which waits only for the
calls inside an nng function (microseconds; see ClientBase.close).
"""
import pynng

from lunamatch import _rpc


class Client(_rpc.ClientBase):
    """Blocking MatchService client over several endpoints; see
    lunamatch._rpc.ClientBase for the arguments and Methods for the calls."""

    def _invoke(self, method, request, unwrap, timeout, metadata):
        call = self._call(method, request, unwrap, timeout, metadata)
        try:
            while True:
                j = call.pick()
                if j is None:
                    call.give_up()
                    self._pool.wait_closed(_rpc.CONNECT_POLL)
                    continue
                with _rpc.Flight(self._pool, j) as f:
                    try:
                        f.send(call.envelope(), call.send_ms(), call.since)
                    except (pynng.Timeout, pynng.ConnectionReset):
                        call.not_sent()
                        continue
                    try:
                        msg = f.recv(call.wait_ms())
                    except pynng.Timeout:
                        raise call.no_answer() from None
                    except pynng.ConnectionReset:
                        call.connection_lost()
                        continue
                    out = call.answer(msg)
                if out is not None:
                    return out
        except pynng.Closed:
            raise call.closed() from None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
