"""Fixtures of the lunamatch Python client tests: real services.

One session starts lunamatch-devkafka (the librdkafka mock cluster),
lunamatch-ingest and two lunamatch-match instances from the build's bin
directory (LUNAMATCH_BIN, default build/bin of the repository), on free
127.0.0.1 ports and fresh data directories, and loads the sample postings
and profiles through the package's own RecordProducer. ``match`` serves the
samples; ``match2`` has an empty store and a 64 KiB request limit, for the
tests of several endpoints and of failures. Every wait is bounded.
"""
import json
import os
import select
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import lunamatch
from lunamatch.v1 import match_pb2

REPO = Path(__file__).resolve().parents[3]
# free_port: ports below the kernel's ephemeral range (scripts/ports.py says why).
sys.path.insert(0, str(REPO / "scripts"))
from ports import free_port  # noqa: E402,F401 - the tests import it from here
BIN = Path(os.environ.get("LUNAMATCH_BIN", REPO / "build" / "bin"))
SAMPLES = REPO / "data" / "samples"
MATCH2_MAX_REQUEST = 65536
SERVING = match_pb2.HealthCheckResponse.SERVING


def wait_for(what, cond, timeout=30.0, step=0.1):
    """Calls cond until it returns a true value, at most timeout seconds."""
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        try:
            v = cond()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - kept for the failure message
            last = e
        time.sleep(step)
    raise AssertionError("timed out waiting for %s (last error: %r)" % (what, last))


def connected(c, n, timeout=5.0):
    """Waits until client c has a connection to n endpoints."""
    wait_for("%d endpoints connected" % n, lambda: len(c.connected()) == n,
             timeout=timeout, step=0.01)


class Service:
    """A started binary; stop() sends SIGTERM and waits (SIGKILL after 15 s)."""

    def __init__(self, name, args, env, logdir, stdout=subprocess.DEVNULL):
        self.name = name
        self.log = logdir / (name + ".log")
        with open(self.log, "wb") as err:
            self.proc = subprocess.Popen([str(BIN / args[0])] + args[1:], cwd=REPO, env=env,
                                         stdin=subprocess.DEVNULL, stdout=stdout,
                                         stderr=err, start_new_session=True)

    def alive(self):
        return self.proc.poll() is None

    def pause(self):
        """SIGSTOP, and waits until the kernel shows the process stopped."""
        self.proc.send_signal(signal.SIGSTOP)
        stat = Path("/proc/%d/stat" % self.proc.pid)
        wait_for("%s stopped" % self.name,
                 lambda: stat.read_text().rsplit(")", 1)[1].split()[0] == "T",
                 timeout=5, step=0.005)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stdout:
            self.proc.stdout.close()


def read_line(proc, timeout):
    """The first line proc writes on stdout, within timeout seconds."""
    buf = b""
    end = time.monotonic() + timeout
    fd = proc.stdout.fileno()
    while b"\n" not in buf:
        left = end - time.monotonic()
        if left <= 0 or proc.poll() is not None:
            raise AssertionError("no bootstrap line from lunamatch-devkafka")
        r, _, _ = select.select([fd], [], [], left)
        if r:
            chunk = os.read(fd, 4096)
            if not chunk:
                raise AssertionError("lunamatch-devkafka closed stdout")
            buf += chunk
    return buf.split(b"\n", 1)[0].decode().strip()


def side_env(env, tmp, name):
    """The environment of an extra match instance that must not take part in
    the main one's event derivation: its own empty data directory, its own
    record, events and decision topics, and its own events group (the
    partition owners of one group derive the events of every replica)."""
    return dict(env, LUNAMATCH_DATA_DIR=str(tmp / ("var-" + name)),
                LUNAMATCH_TOPIC_POSTINGS="py.%s.postings" % name,
                LUNAMATCH_TOPIC_PROFILES="py.%s.profiles" % name,
                LUNAMATCH_TOPIC_MATCHES="py.%s.matches" % name,
                LUNAMATCH_TOPIC_DECISIONS="py.%s.decisions" % name,
                LUNAMATCH_EVENTS_GROUP_ID="py-%s-events" % name)


def load(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class Stack:
    """Addresses of the running services and the sample data."""

    def metrics(self, http):
        with urllib.request.urlopen("http://%s/metrics" % http, timeout=5) as r:
            return r.read().decode()

    def metric(self, http, series):
        """The value of one series ('name{labels}') in /metrics, 0 when absent."""
        for line in self.metrics(http).splitlines():
            if line.startswith(series + " "):
                return float(line.split()[-1])
        return 0.0


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    for b in ("lunamatch", "lunamatch-devkafka", "lunamatch-ingest", "lunamatch-match"):
        if not (BIN / b).exists():
            pytest.fail("%s is missing: build the project first" % (BIN / b))
    tmp = tmp_path_factory.mktemp("lunamatch")
    env = dict(os.environ, LUNAMATCH_LOG_LEVEL="warn", LUNAMATCH_DATA_DIR=str(tmp / "var"),
               LUNAMATCH_BATCH_MS="50", LUNAMATCH_POLL_MS="200")
    for k in ("LUNAMATCH_RPC_URL", "LUNAMATCH_NOTIFY_URL", "LUNAMATCH_HTTP_ADDR"):
        env.pop(k, None)
    services = []
    st = Stack()
    try:
        kafka = Service("devkafka", ["lunamatch-devkafka"], env, tmp, stdout=subprocess.PIPE)
        services.append(kafka)
        st.brokers = env["LUNAMATCH_BROKERS"] = read_line(kafka.proc, 20)

        st.ingest_http = "127.0.0.1:%d" % free_port()
        services.append(Service("ingest", ["lunamatch-ingest", "--http", st.ingest_http],
                                env, tmp))
        st.url = "tcp://127.0.0.1:%d" % free_port()
        st.match_http = "127.0.0.1:%d" % free_port()
        st.match = Service("match", ["lunamatch-match", "--url", st.url,
                                     "--http", st.match_http], env, tmp)
        services.append(st.match)
        # match2: its own empty store and topics, a small request limit.
        env2 = side_env(env, tmp, "match2")
        st.url2 = "tcp://127.0.0.1:%d" % free_port()
        st.match2_http = "127.0.0.1:%d" % free_port()
        st.match2 = Service("match2", ["lunamatch-match", "--url", st.url2,
                                       "--http", st.match2_http, "--max-request-bytes",
                                       str(MATCH2_MAX_REQUEST)], env2, tmp)
        services.append(st.match2)

        for u in (st.url, st.url2):
            with lunamatch.Client(u, timeout=1.0) as one:
                wait_for("%s serving" % u, lambda: one.check().status == SERVING)

        st.postings = load(SAMPLES / "postings.jsonl")
        st.profiles = load(SAMPLES / "profiles.jsonl")
        with lunamatch.RecordProducer(st.brokers) as p:
            for r in st.postings:
                p.send_posting(r)
            for r in st.profiles:
                p.send_profile(r)

        def stats():
            out = subprocess.run([str(BIN / "lunamatch"), "store", "stats", "--json",
                                  "--data-dir", env["LUNAMATCH_DATA_DIR"]], cwd=REPO,
                                 capture_output=True, timeout=10, check=True)
            return json.loads(out.stdout)

        s = wait_for("samples stored", lambda: (
            lambda x: x if x["postings"] >= len(st.postings)
            and x["profiles"] >= len(st.profiles) else None)(stats()), timeout=60)
        with lunamatch.Client(st.url, timeout=2.0) as c:
            wait_for("index caught up", lambda: c.check().index_seq >= s["last_seq"])
            st.loaded = c.check()  # the health right after loading the samples
        st.tmp = tmp
        st.env = env
        yield st
    finally:
        for svc in reversed(services):
            svc.stop()
        for svc in services:
            if svc.proc.returncode not in (0, -signal.SIGTERM):
                print("%s exited %s; log %s:\n%s" % (svc.name, svc.proc.returncode, svc.log,
                                                    svc.log.read_text()[-4000:]))


@pytest.fixture
def client(stack):
    with lunamatch.Client(stack.url, timeout=5.0) as c:
        yield c
