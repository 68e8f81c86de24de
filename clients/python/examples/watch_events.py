"""Prints new-match events as they arrive, de-duplicated on event_id.

    python watch_events.py [--from-beginning] [--count N] [--group GROUP_ID]

Without --group it joins no consumer group and commits nothing.
"""
import argparse

import lunamatch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--from-beginning", action="store_true")
    ap.add_argument("--count", type=int, help="stop after N distinct events")
    ap.add_argument("--group")
    a = ap.parse_args()
    seen = set()
    with lunamatch.MatchEventConsumer(group_id=a.group,  # LUNAMATCH_BROKERS
                                      from_beginning=a.from_beginning) as c:
        for ev in c:
            if ev.event_id in seen:  # delivery is at least once
                continue
            seen.add(ev.event_id)
            print("%s  %-28s %-32s %.3f  %s" % (ev.event_id[:8], ev.candidate_id, ev.job_id,
                                                ev.score, ev.explanation_summary), flush=True)
            if a.count is not None and len(seen) >= a.count:
                break


if __name__ == "__main__":
    main()
