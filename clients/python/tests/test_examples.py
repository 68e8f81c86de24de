"""The examples of clients/python/examples run against the real services."""
import json
import os
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run(stack, name, *args, timeout=60):
    env = dict(os.environ, LUNAMATCH_RPC_URL=stack.url, LUNAMATCH_BROKERS=stack.brokers)
    return subprocess.run([sys.executable, str(EXAMPLES / name)] + list(args), env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_match_jobs_example(stack):
    r = run(stack, "match_jobs.py", "cand-ml-lead-chicago")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split()[0] == "1" and "skills" in r.stdout
    r = run(stack, "match_jobs.py", "cand-nobody")
    assert r.returncode == 1 and "no candidate cand-nobody" in r.stderr


def test_async_fanout_example(stack):
    r = run(stack, "async_fanout.py", "job-dfs-sr-mgr-ml", "job-nope")
    assert r.returncode == 0, r.stderr
    out = dict(line.split(None, 1) for line in r.stdout.splitlines())
    assert out["job-nope"] == "NOT_FOUND" and out["job-dfs-sr-mgr-ml"].startswith("cand-")


def test_produce_and_watch_examples(stack, tmp_path):
    """A line that is not a JSON object of the record (does not fit the
    schema; an array, null, a string, even one holding a record's JSON) is
    skipped with a message naming it; the other lines are sent."""
    f = tmp_path / "profiles.jsonl"
    good = dict(stack.profiles[0], id="cand-example-1", version=1)
    quoted = json.dumps(json.dumps(dict(good, id="cand-example-2")))
    f.write_text("\n".join([json.dumps(good), '{"id": "x", "bogus": 1}', "[1]", "null",
                            quoted]) + "\n")
    r = run(stack, "produce_records.py", "profiles", str(f), "--json")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "sent 1, skipped 4"
    assert all("line %d" % n in r.stderr for n in (2, 3, 4, 5))
    r = run(stack, "watch_events.py", "--from-beginning", "--count", "3")
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()) == 3
