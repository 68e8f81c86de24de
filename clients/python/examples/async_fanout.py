"""Many calls at once with the asyncio client: the top candidate of every
posting given on the command line.

    python async_fanout.py JOB_ID [JOB_ID...]
"""
import asyncio
import sys

import lunamatch


async def main(jobs):
    async with lunamatch.AsyncClient(timeout=2.0) as c:
        results = await asyncio.gather(*(c.match_candidates(j, top_k=1) for j in jobs),
                                       return_exceptions=True)
    for job, r in zip(jobs, results):
        if isinstance(r, lunamatch.RpcError):
            print("%-32s %s" % (job, r.code_name))
        elif r.matches:
            print("%-32s %s %.3f" % (job, r.matches[0].candidate_id, r.matches[0].score))
        else:
            print("%-32s no candidate" % job)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:] or ["job-dfs-sr-mgr-ml"]))
