"""Sends postings or profiles from a JSON-lines file to ingest's topics.

    python produce_records.py postings|profiles FILE [--json]
"""
import json
import sys

import lunamatch


def main():
    kind, path = sys.argv[1], sys.argv[2]
    as_json = "--json" in sys.argv[3:]
    send = {"postings": "send_posting", "profiles": "send_profile"}[kind]
    skipped = 0
    with lunamatch.RecordProducer(as_json=as_json) as p:  # LUNAMATCH_BROKERS
        with open(path) as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    if not isinstance(record, dict):
                        raise ValueError("not a JSON object")
                    getattr(p, send)(record)
                except ValueError as e:  # not a JSON object, or does not fit the schema
                    print("line %d: %s" % (n, e), file=sys.stderr)
                    skipped += 1
    # Leaving the block waited for every delivery report.
    print("sent %d, skipped %d" % (p.delivered, skipped))


if __name__ == "__main__":
    main()
