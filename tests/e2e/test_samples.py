#!/usr/bin/env python3
"""End to end: the sample data through the real CLI, broker and ingest.

`lunamatch produce` sends data/samples/postings.jsonl and profiles.jsonl; the
invalid cases of data/samples/invalid.jsonl are sent as written with
`lunamatch produce --raw` (no local checks, keyed by their id when they have
one), from one temporary JSON-lines file per topic. The test then asserts that every valid sample landed in the store at its
version, and that every invalid case is in the dead-letter topic with the
reason ingest must give it. Runs lunamatch-devkafka and lunamatch-ingest as
real processes on 127.0.0.1; every wait is bounded.

Environment: LUNAMATCH_SOURCE_DIR, LUNAMATCH_BIN_DIR (set by ctest).
"""
import collections
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

SRC = os.environ.get("LUNAMATCH_SOURCE_DIR", ".")
BIN = os.environ.get("LUNAMATCH_BIN_DIR", "build/bin")
# free_port: ports below the kernel's ephemeral range (scripts/ports.py says why).
sys.path.insert(0, os.path.join(SRC, "scripts"))
from ports import free_port  # noqa: E402
DEADLINE_S = 90

# The reason token ingest gives each kind of invalid case (invalid.jsonl
# "expect" keyword -> lunamatch-reason header).
REASONS = {
    "missing id": "missing_field",
    "missing title": "missing_field",
    "bad id": "bad_id",
    "salary range": "bad_salary",
    "unknown currency": "bad_currency",
    "bad country": "bad_country",
    "unknown enum": "unknown_enum",
    "unknown field": "schema",
    "wrong type": "schema",
    "json": "bad_json",
}


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def cli(env, *args, check=True):
    r = subprocess.run([os.path.join(BIN, "lunamatch"), *args], env=env,
                       capture_output=True, text=True, timeout=60)
    if check and r.returncode != 0:
        fail("lunamatch %s: exit %d: %s" % (" ".join(args), r.returncode, r.stderr))
    return r


def wait_until(what, fn, procs=()):
    end = time.monotonic() + DEADLINE_S
    while time.monotonic() < end:
        for p in procs:
            if p.poll() is not None:
                fail("%s exited %d while waiting for %s" % (p.args[0], p.returncode, what))
        v = fn()
        if v:
            return v
        time.sleep(0.2)
    fail("timed out waiting for " + what)


def main():
    procs = []
    tmp = tempfile.mkdtemp(prefix="lunamatch-e2e-")
    env = dict(os.environ)
    env.update({
        "LUNAMATCH_DATA_DIR": os.path.join(tmp, "var"),
        "LUNAMATCH_HTTP_ADDR": "127.0.0.1:%d" % free_port(),
        "LUNAMATCH_NOTIFY_URL": "ipc://%s/notify.ipc" % tmp,
        "LUNAMATCH_LOG_LEVEL": "warn",
        "LUNAMATCH_BATCH_MS": "50",
    })
    try:
        # From the source tree, so that the default data files are found.
        kafka = subprocess.Popen([os.path.join(BIN, "lunamatch-devkafka")],
                                 stdout=subprocess.PIPE, text=True, env=env, cwd=SRC)
        procs.append(kafka)
        brokers = kafka.stdout.readline().strip()
        if not brokers:
            fail("lunamatch-devkafka printed no bootstrap address")
        env["LUNAMATCH_BROKERS"] = brokers
        procs.append(subprocess.Popen([os.path.join(BIN, "lunamatch-ingest")], env=env,
                                      cwd=SRC))

        postings = read_jsonl(os.path.join(SRC, "data/samples/postings.jsonl"))
        profiles = read_jsonl(os.path.join(SRC, "data/samples/profiles.jsonl"))
        invalid = read_jsonl(os.path.join(SRC, "data/samples/invalid.jsonl"))

        cli(env, "produce", "postings", os.path.join(SRC, "data/samples/postings.jsonl"))
        cli(env, "produce", "profiles", os.path.join(SRC, "data/samples/profiles.jsonl"),
            "--as-json")

        # Invalid cases, as written (--raw: nothing checks them before
        # ingest), one JSON-lines file per topic. --raw keys a message by the
        # record's string id: cases with one are expected under that key,
        # the others (no id, not JSON) without a key, told apart by reason.
        expected = {}                        # key -> reason
        expected_keyless = collections.Counter()  # reason -> count
        lines = collections.defaultdict(list)
        for case in invalid:
            rec = case.get("record")
            if rec is None:
                value = case["raw"]
            else:
                value = json.dumps(rec, separators=(",", ":"), ensure_ascii=False)
            if "\n" in value or not value.strip():
                fail("invalid case %r does not fit on one non-blank line" % value)
            lines[case["topic"]].append(value)
            key = rec.get("id") if isinstance(rec, dict) else None
            reason = REASONS[case["expect"]]
            if isinstance(key, str) and key:
                if key in expected:
                    fail("two invalid cases share the id %s" % key)
                expected[key] = reason
            else:
                expected_keyless[reason] += 1
        for topic, values in sorted(lines.items()):
            path = os.path.join(tmp, "invalid-%s.jsonl" % topic)
            with open(path, "w", encoding="utf-8") as f:
                f.write("".join(v + "\n" for v in values))
            r = cli(env, "produce", topic, path, "--raw")
            if r.stdout.strip() != "sent %d, failed 0, skipped 0" % len(values):
                fail("produce %s --raw: %s" % (topic, r.stdout.strip()))
        ninvalid = len(expected) + sum(expected_keyless.values())
        if ninvalid != len(invalid):
            fail("%d invalid cases counted, %d in the file" % (ninvalid, len(invalid)))

        def stored():
            r = cli(env, "store", "stats", "--json", check=False)
            if r.returncode != 0:
                return None
            s = json.loads(r.stdout)
            return s if s["postings"] >= len(postings) and s["profiles"] >= len(profiles) else None

        stats = wait_until("the samples in the store", stored, procs)
        if stats["postings"] != len(postings) or stats["profiles"] != len(profiles):
            fail("store has %d postings, %d profiles; want %d, %d" % (
                stats["postings"], stats["profiles"], len(postings), len(profiles)))
        for kind, records in (("postings", postings), ("profiles", profiles)):
            r = cli(env, "store", "list", kind, "--json", "--limit", "1000")
            got = {o["id"]: o["version"] for o in map(json.loads, r.stdout.splitlines())}
            want = {rec["id"]: rec["version"] for rec in records}
            if got != want:
                fail("%s in the store differ: missing %s, extra %s" % (
                    kind, sorted(set(want) - set(got)), sorted(set(got) - set(want))))

        def dead_letters():
            # One more than expected: an extra dead letter must show up.
            r = cli(env, "dlq", "tail", "--from-beginning", "--count",
                    str(ninvalid + 1), "--json", check=False)
            if r.returncode != 0:
                return None
            rows = [json.loads(line) for line in r.stdout.splitlines()]
            return rows if len(rows) >= ninvalid else None

        rows = wait_until("the invalid cases in the dead-letter topic", dead_letters, procs)
        if len(rows) != ninvalid:
            fail("%d dead letters, want %d" % (len(rows), ninvalid))
        got = {row["key"]: row["reason"] for row in rows if row["key"] is not None}
        got_keyless = collections.Counter(row["reason"] for row in rows
                                          if row["key"] is None)
        if got != expected or got_keyless != expected_keyless:
            fail("dead letters differ:\n got  %s, without a key %s\n want %s, "
                 "without a key %s" % (
                     json.dumps(got, sort_keys=True),
                     json.dumps(got_keyless, sort_keys=True),
                     json.dumps(expected, sort_keys=True),
                     json.dumps(expected_keyless, sort_keys=True)))
        for row in rows:
            if not row["error"] or not row["source_topic"].startswith("lunamatch."):
                fail("dead letter without error or source: %s" % row)
        print("e2e samples: %d postings, %d profiles stored; %d invalid cases dead-lettered"
              % (len(postings), len(profiles), ninvalid))
    finally:
        # Stop everything before reporting, so no child outlives the test.
        problems = []
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
            try:
                rc = p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                problems.append("%s did not stop on SIGTERM" % p.args[0])
                continue
            if rc != 0:
                problems.append("%s exited %d" % (p.args[0], rc))
        subprocess.run(["rm", "-rf", tmp])
        if problems and sys.exc_info()[0] is None:
            fail("; ".join(problems))


if __name__ == "__main__":
    main()
