#!/usr/bin/env python3
"""Soak test: ingest, match and events under mixed load with periodic SIGKILLs.

    scripts/soak.py [--minutes N] [--bin DIR] [--kill-every S] [--rate R] [--keep]

Starts lunamatch-devkafka, lunamatch-ingest and lunamatch-match on a fresh data
directory, then for N minutes (default 1) produces a mixed stream to the
postings and profiles topics: new records, updates with higher versions,
tombstones, revivals after a tombstone, and a few messages ingest must reject.
Every --kill-every seconds (default 15) it SIGKILLs ingest or match in turn and
starts it again at once. Then it stops producing and proves that nothing was
lost, within a bounded wait (--settle, default 120 s):

  - the record store holds exactly the last message of every id (its version,
    or nothing after a tombstone), whatever was replayed after the kills;
  - lunamatch-match serves that state: its index reached the store's last
    change, and its counts of open postings and profiles equal the store's;
  - every match event it owed was delivered: its outbox is empty
    (lunamatch_events_pending 0) and none failed (lunamatch_events_failed_total 0).

Exit status 0 when all hold, 1 with the differences otherwise, 2 for bad
arguments. make test runs the one-minute version (ctest soak.short); run the
long one by hand, e.g. scripts/soak.py --minutes 30 --kill-every 20.
Everything is bounded: each wait has a deadline, and the services are stopped
(SIGTERM, then SIGKILL) on every exit path.
"""
import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

# Ports below the kernel's ephemeral range (ports.py, next to this script).
from ports import free_port

SKILLS = ["Python", "Java", "Go", "Rust", "SQL", "Kubernetes", "Terraform",
          "React", "PostgreSQL", "Machine Learning"]
COUNTRIES = ["US", "DE", "FR", "GB", "CA"]
# The services find their data files (data/skills.tsv, ...) from here.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Soak:
    def __init__(self, args):
        self.a = args
        self.bin = os.path.abspath(args.bin)
        self.dir = tempfile.mkdtemp(prefix="lunamatch-soak.")
        self.procs = {}
        self.rng = random.Random(args.seed)
        # id -> [kind, next version, last version or None after a tombstone]
        self.state = {}
        self.sent = 0
        self.kills = {"ingest": 0, "match": 0}
        self.delivered = 0

    # ---- processes ------------------------------------------------------

    def start(self, name, argv, env):
        log = open(os.path.join(self.dir, f"{name}.log"), "ab")
        self.procs[name] = subprocess.Popen(
            argv, env=env, stdout=subprocess.DEVNULL, stderr=log,
            start_new_session=True, cwd=ROOT)
        log.close()

    def stop(self, name, sig=signal.SIGTERM, wait=15):
        p = self.procs.pop(name, None)
        if p is None or p.poll() is not None:
            return
        p.send_signal(sig)
        try:
            p.wait(wait)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()

    def start_services(self):
        dk_out = os.path.join(self.dir, "devkafka.out")
        with open(dk_out, "wb") as out, \
                open(os.path.join(self.dir, "devkafka.log"), "wb") as log:
            self.procs["devkafka"] = subprocess.Popen(
                [os.path.join(self.bin, "lunamatch-devkafka"), "--partitions", "3"],
                stdout=out, stderr=log, start_new_session=True, cwd=ROOT)
        deadline = time.time() + 20
        while time.time() < deadline:
            with open(dk_out) as f:
                line = f.readline().strip()
            if line:
                break
            time.sleep(0.1)
        else:
            raise RuntimeError("lunamatch-devkafka did not start")
        self.brokers = line
        self.ingest_http = f"127.0.0.1:{free_port()}"
        self.match_http = f"127.0.0.1:{free_port()}"
        self.env = dict(os.environ,
                        LUNAMATCH_BROKERS=self.brokers,
                        LUNAMATCH_DATA_DIR=os.path.join(self.dir, "var"),
                        LUNAMATCH_RPC_URL=f"tcp://127.0.0.1:{free_port()}",
                        LUNAMATCH_LOG_LEVEL="warn",
                        LUNAMATCH_BATCH_MS="100")
        self.start_ingest()
        self.start_match()
        self.wait("match serving", lambda: self.cli("health").returncode == 0, 60)

    def start_ingest(self):
        self.start("ingest", [os.path.join(self.bin, "lunamatch-ingest"),
                              "--http", self.ingest_http], self.env)

    def start_match(self):
        self.start("match", [os.path.join(self.bin, "lunamatch-match"),
                             "--http", self.match_http], self.env)

    def cli(self, *args):
        return subprocess.run([os.path.join(self.bin, "lunamatch"), *args],
                              env=self.env, capture_output=True, text=True,
                              timeout=60, cwd=ROOT)

    def wait(self, what, cond, secs):
        deadline = time.time() + secs
        while time.time() < deadline:
            if cond():
                return True
            time.sleep(0.25)
        raise RuntimeError(f"timed out after {secs} s waiting for {what} "
                           f"(logs in {self.dir})")

    # ---- load -------------------------------------------------------------

    def producer(self, topic):
        return subprocess.Popen(
            ["kcat", "-P", "-b", self.brokers, "-t", topic, "-K", "\t", "-Z",
             "-H", "content-type=application/json"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(self.dir, f"kcat.{topic}.log"), "wb"),
            text=True)

    def record(self, kind, rid, version):
        r = self.rng
        skills = r.sample(SKILLS, 3)
        if kind == "posting":
            return {"id": rid, "version": version, "title": f"Engineer {rid}",
                    "skills": [{"name": s} for s in skills],
                    "locations": [{"country": r.choice(COUNTRIES)}],
                    "remote": "REMOTE_POLICY_REMOTE"}
        return {"id": rid, "version": version, "headline": f"Engineer {rid}",
                "skills": [{"name": s, "years": 3} for s in skills],
                "locations": [{"country": r.choice(COUNTRIES)}],
                "remote": "REMOTE_POLICY_REMOTE"}

    def one_message(self, pipes):
        r = self.rng
        kind = "posting" if r.random() < 0.7 else "profile"
        pool = self.a.ids if kind == "posting" else max(10, self.a.ids // 4)
        rid = f"{'job' if kind == 'posting' else 'cand'}-soak-{r.randrange(pool)}"
        st = self.state.setdefault(rid, [kind, 1, None])
        x = r.random()
        if x < 0.02:
            line = f"{rid}\t{{not json"  # rejected: the state stays
        elif x < 0.14 and st[2] is not None:
            line = f"{rid}\t"  # tombstone (-Z: an empty value is NULL)
            st[2] = None
        else:
            v = st[1]
            st[1] += 1
            st[2] = v
            line = f"{rid}\t{json.dumps(self.record(kind, rid, v))}"
        pipes[kind].stdin.write(line + "\n")
        self.sent += 1

    def run_load(self):
        pipes = {"posting": self.producer(self.env_topic("POSTINGS")),
                 "profile": self.producer(self.env_topic("PROFILES"))}
        end = time.time() + self.a.minutes * 60
        next_kill = time.time() + self.a.kill_every
        victim = "ingest"
        tick = 0.05
        while time.time() < end:
            for _ in range(max(1, int(self.a.rate * tick))):
                self.one_message(pipes)
            for p in pipes.values():
                p.stdin.flush()
            if time.time() >= next_kill:
                self.stop(victim, signal.SIGKILL)
                self.kills[victim] += 1
                (self.start_ingest if victim == "ingest" else self.start_match)()
                victim = "match" if victim == "ingest" else "ingest"
                next_kill = time.time() + self.a.kill_every
            time.sleep(tick)
        for p in pipes.values():
            p.stdin.close()
            if p.wait(60) != 0:
                raise RuntimeError("kcat could not deliver everything")

    def env_topic(self, what):
        default = {"POSTINGS": "lunamatch.postings.v1",
                   "PROFILES": "lunamatch.profiles.v1"}[what]
        return os.environ.get(f"LUNAMATCH_TOPIC_{what}", default)

    # ---- checks -----------------------------------------------------------

    def store_view(self):
        view = {}
        for kind in ("postings", "profiles"):
            out = self.cli("store", "list", kind, "--json")
            if out.returncode != 0:
                return None
            for line in out.stdout.splitlines():
                o = json.loads(line)
                view[o["id"]] = int(o["version"])
        return view

    def differences(self):
        view = self.store_view()
        if view is None:
            return ["the store cannot be read"]
        diff = []
        for rid, (_, _, want) in sorted(self.state.items()):
            got = view.get(rid)
            if got != want:
                diff.append(f"{rid}: store has {got}, the last message says {want}")
        for rid in sorted(set(view) - set(self.state)):
            diff.append(f"{rid}: in the store but never produced")
        return diff

    def metric(self, addr, name):
        try:
            with urllib.request.urlopen(f"http://{addr}/metrics", timeout=5) as r:
                text = r.read().decode()
        except OSError:
            return None
        for line in text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        return None

    def match_caught_up(self):
        stats = self.cli("store", "stats", "--json")
        health = self.cli("--json", "health")
        if stats.returncode != 0 or health.returncode != 0:
            return False
        s, h = json.loads(stats.stdout), json.loads(health.stdout)
        return (int(h.get("index_seq", 0)) >= int(s["last_seq"]) and
                int(h.get("postings", 0)) == int(s["postings"]) and
                int(h.get("profiles", 0)) == int(s["profiles"]))

    def outbox_empty(self):
        return self.metric(self.match_http, "lunamatch_events_pending") == 0

    def check(self):
        problems = []
        try:
            self.wait("the store to hold the last message of every id",
                      lambda: not self.differences(), self.a.settle)
        except RuntimeError as e:
            problems.append(str(e))
            problems += self.differences()[:20]
        try:
            self.wait("match to serve the store's state", self.match_caught_up,
                      self.a.settle)
        except RuntimeError as e:
            problems.append(str(e))
        try:
            self.wait("match's event outbox to drain", self.outbox_empty,
                      self.a.settle)
        except RuntimeError as e:
            problems.append(str(e))
        self.delivered = self.metric(self.match_http,
                                     "lunamatch_events_delivered_total") or 0
        failed = self.metric(self.match_http, "lunamatch_events_failed_total")
        if failed not in (0, None):
            problems.append(f"{failed:.0f} match events failed for good")
        return problems

    def close(self):
        for name in ("match", "ingest", "devkafka"):
            self.stop(name)
        if self.a.keep:
            print(f"soak: files kept in {self.dir}")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=1.0)
    ap.add_argument("--bin", default="build/bin")
    ap.add_argument("--kill-every", type=float, default=15.0)
    ap.add_argument("--rate", type=float, default=200.0, help="messages per second")
    ap.add_argument("--ids", type=int, default=2000, help="posting ids in use")
    ap.add_argument("--settle", type=float, default=120.0)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    if a.minutes <= 0 or a.minutes > 24 * 60 or a.kill_every <= 1 or a.rate <= 0:
        ap.error("--minutes must be in (0, 1440], --kill-every > 1, --rate > 0")
    if a.seed is None:
        a.seed = int(time.time())
    s = Soak(a)
    problems = ["not run"]
    try:
        s.start_services()
        t0 = time.time()
        s.run_load()
        print(f"soak: {s.sent} messages in {time.time() - t0:.0f} s, "
              f"{s.kills['ingest']} SIGKILLs of ingest, {s.kills['match']} of match, "
              f"seed {a.seed}")
        problems = s.check()
    except (RuntimeError, subprocess.TimeoutExpired, OSError) as e:
        problems = [str(e)]
        s.a.keep = True
    finally:
        if problems:
            s.a.keep = True
        s.close()
    if problems:
        print("soak: FAILED", file=sys.stderr)
        for p in problems:
            print("  " + p, file=sys.stderr)
        return 1
    live = sum(1 for v in s.state.values() if v[2] is not None)
    print(f"soak: ok: {len(s.state)} ids, {live} live, every one as its last "
          f"message says; match caught up; {s.delivered:.0f} match events "
          "delivered, none pending or failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
