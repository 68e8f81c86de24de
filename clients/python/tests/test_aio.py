"""The asyncio client against a real lunamatch-match: every method,
concurrency, errors, deadlines and several endpoints."""
import asyncio
import time

import pytest

import lunamatch
from lunamatch.v1 import match_pb2, records_pb2

from conftest import SERVING, free_port


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def test_every_method(stack):
    async def main():
        async with lunamatch.AsyncClient(stack.url, timeout=5.0) as c:
            h = await c.check()
            jobs = await c.match_jobs("cand-ml-lead-chicago", top_k=3)
            cands = await c.match_candidates("job-dfs-sr-mgr-ml", top_k=3, explain="FULL")
            ex = await c.explain_match("cand-ml-lead-chicago", "job-dfs-sr-mgr-ml")
            p = await c.get_posting("job-dfs-sr-mgr-ml")
            pr = await c.get_profile("cand-ml-lead-chicago")
            raw = await c.call("GetProfile", match_pb2.GetProfileRequest(id="cand-ml-lead-chicago"))
            return h, jobs, cands, ex, p, pr, raw

    h, jobs, cands, ex, p, pr, raw = run(main())
    assert h.status == SERVING
    assert len(jobs.matches) == 3 and jobs.matches[0].rank == 1
    assert len(cands.matches) == 3 and cands.matches[0].explanation.features
    assert ex.eligible
    assert isinstance(p, records_pb2.JobPosting) and p.id == "job-dfs-sr-mgr-ml"
    assert isinstance(pr, records_pb2.CandidateProfile) and pr.id == "cand-ml-lead-chicago"
    assert raw.profile == pr


def test_concurrent_calls(stack):
    ids = [p["id"] for p in stack.postings[:20]]

    async def main():
        async with lunamatch.AsyncClient(stack.url) as c:
            return await asyncio.gather(*(c.get_posting(i) for i in ids))

    assert [p.id for p in run(main())] == ids


def test_errors(stack):
    dead = "tcp://127.0.0.1:%d" % free_port()

    async def main():
        out = []
        async with lunamatch.AsyncClient(stack.url) as c:
            for coro in (c.get_posting("nope"), c.match_jobs("x", top_k=5000),
                         c.call("NoSuchMethod", b"")):
                try:
                    await coro
                except lunamatch.RpcError as e:
                    out.append(e)
        async with lunamatch.AsyncClient(dead, timeout=0.3) as c:
            try:
                await c.check()
            except lunamatch.RpcError as e:
                out.append(e)
        return out

    errs = run(main())
    assert [type(e) for e in errs] == [lunamatch.NotFound, lunamatch.InvalidArgument,
                                       lunamatch.Unimplemented, lunamatch.Unavailable]
    assert [e.local for e in errs] == [False, False, False, True]


def test_dead_endpoint_and_deadline(stack):
    dead = "tcp://127.0.0.1:%d" % free_port()

    async def main():
        async with lunamatch.AsyncClient([dead, stack.url], timeout=3.0) as c:
            ok = [await c.check() for _ in range(3)]
        async with lunamatch.AsyncClient(stack.url2, timeout=30.0) as c:
            await c.check()
            stack.match2.pause()
            try:
                t = time.monotonic()
                try:
                    await c.check(timeout=0.3)
                    late = None
                except lunamatch.DeadlineExceeded as e:
                    late = e
                took = time.monotonic() - t
            finally:
                stack.match2.resume()
            again = await c.check()
        return ok, late, took, again

    ok, late, took, again = run(main())
    assert all(h.status == SERVING for h in ok)
    # Its own 0.3 s and the grace, far below the client's 30 s.
    assert late is not None and late.local and 0.3 <= took < 10.0
    assert again.status == SERVING


def test_cancelling_a_call(stack):
    async def main():
        async with lunamatch.AsyncClient(stack.url2, timeout=5.0) as c:
            await c.check()
            stack.match2.pause()
            try:
                task = asyncio.ensure_future(c.check())
                await asyncio.sleep(0.1)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
            finally:
                stack.match2.resume()
            return await c.check()

    assert run(main()).status == SERVING


def test_a_call_on_a_closed_client_says_so(stack):
    async def main():
        c = lunamatch.AsyncClient(stack.url)
        c.close()
        await c.check()

    with pytest.raises(RuntimeError, match="^client is closed$"):
        run(main())
