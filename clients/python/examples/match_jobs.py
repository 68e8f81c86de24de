"""Ranked jobs for a candidate, with the reasons, from one or more match
endpoints.

    python match_jobs.py CANDIDATE_ID [URL[,URL...]]
"""
import sys

import lunamatch


def main():
    cand = sys.argv[1] if len(sys.argv) > 1 else "cand-ml-lead-chicago"
    urls = sys.argv[2] if len(sys.argv) > 2 else None  # None: LUNAMATCH_RPC_URL
    with lunamatch.Client(urls, timeout=2.0) as c:
        try:
            resp = c.match_jobs(cand, top_k=5, filters={"countries": ["US"]})
        except lunamatch.NotFound:
            sys.exit("no candidate %s" % cand)
        except (lunamatch.Unavailable, lunamatch.DeadlineExceeded) as e:
            sys.exit("match service: %s" % e)
        for m in resp.matches:
            print("%2d  %.3f  %-32s %s" % (m.rank, m.score, m.job_id, m.explanation.summary))
        best = resp.matches[0] if resp.matches else None
        if best:
            why = c.explain_match(cand, best.job_id)
            for f in why.match.explanation.features:
                print("    %-13s %.2f x %.2f  %s" % (f.feature, f.value, f.weight, f.detail))


if __name__ == "__main__":
    main()
