#!/usr/bin/env python3
"""server.py - benchmarks of the running match server, through nng as a
client sees it: for each posting count, a fresh store filled by
lunamatch-loadgen, lunamatch-match started on it, `lunamatch bench` runs, and
the results written to bench/results/server-<postings>.json and .txt
(server-<postings>-profiles-<n>.* for another profile count than 5000).

    bench/server.py [--postings 10000,100000] [--profiles 5000]
                    [--clients 16] [--duration 10] [--workers 2]
                    [--bin build/bin] [--out bench/results] [--commit ID]
                    [--build-type T] [--dir TMP]

Measured per posting count:
  load        loadgen's time to write the store (records/s)
  start       match's start to /readyz 200 (the snapshot load)
  memory      match's RssAnon after the load, per posting
  runs        MatchJobs top 10 SUMMARY with 1 client and with --clients
              clients, MatchCandidates top 10 SUMMARY with 1 client; each
              for --duration seconds, followed by the raw nng echo of the
              same sizes and concurrency (the ratio match/echo)
  decisions   match writes its decision log as configured in the environment
              (LUNAMATCH_DECISION_LOG, LUNAMATCH_DECISION_LOG_SYNC_MS; by default
              on, each answer after its decision is synced); the files say which
  CPU         the server's CPU seconds per call it answered over each run
              (warm-up calls included: its lunamatch_rpc_requests_total),
              and the cores other processes (not match, not the client) kept
              busy meanwhile: numbers measured on a busy machine are
              pessimistic, and the file says how busy it was.
  switches    the server's context switches per call it answered, for its
              own threads and for nng's (named "nng:..."), each as waits
              (voluntary) + preemptions (involuntary): the hand-offs of a
              call between threads, counted rather than timed, so that
              they compare across machines and loads better than the CPU

Everything runs on 127.0.0.1 and stops by itself; the store lives in a
temporary directory (--dir, default $TMPDIR or /tmp) removed at the end.
The files name the commit (--commit, default `git describe --always
--dirty` of the source tree, as bench/run.sh does) and the build type
(--build-type, default CMAKE_BUILD_TYPE of the CMakeCache.txt of the build
--bin belongs to); each is written to a temporary file and renamed into
place, so that an interrupted run leaves the previous result whole.
"""
import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

DEFAULT_PROFILES = 5000  # the profile count of the standard result files

HZ = os.sysconf("SC_CLK_TCK")
START_TIMEOUT_S = 600
DRAIN_TIMEOUT_S = 120  # for the calls still running when the client stops
WARMUP = 20  # unmeasured calls per client before each run
METHODS = {"jobs": "MatchJobs", "candidates": "MatchCandidates"}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_total():
    """(busy, total) jiffies of the machine from /proc/stat."""
    f = open("/proc/stat").readline().split()[1:]
    v = [int(x) for x in f]
    idle = v[3] + v[4]
    return sum(v) - idle, sum(v)


def proc_cpu(pid):
    """utime + stime of pid (its own threads, not its children), in jiffies."""
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])


def proc_switches(pid):
    """Context switches of pid's threads so far, {group: [voluntary,
    involuntary]}: group "nng" for nng's own threads (named "nng:..."),
    "match" for the others (workers, decision writer, main). A thread that
    ended between two readings takes its counts with it; the server's
    threads live as long as it does."""
    out = {"match": [0, 0], "nng": [0, 0]}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            comm = open(f"/proc/{pid}/task/{tid}/comm").read().strip()
            status = open(f"/proc/{pid}/task/{tid}/status").read()
        except OSError:
            continue  # ended meanwhile
        group = out["nng" if comm.startswith("nng:") else "match"]
        for line in status.splitlines():
            if line.startswith("voluntary_ctxt_switches:"):
                group[0] += int(line.split()[1])
            elif line.startswith("nonvoluntary_ctxt_switches:"):
                group[1] += int(line.split()[1])
    return out


def rss_anon_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
    return 0


def machine(args):
    model = "unknown"
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "commit": args.commit,
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "kernel": f"{platform.system()} {platform.release()} {platform.machine()}",
        "build_type": args.build_type,
        "loadavg_1m": os.getloadavg()[0],
    }


def http_ok(addr, path):
    try:
        with urllib.request.urlopen(f"http://{addr}{path}", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


# The index's read counters (what bench_index reports per query).
READS = {"entries": "lunamatch_index_entries_read_total",
         "reached": "lunamatch_index_records_reached_total",
         "scored": "lunamatch_index_pairs_scored_total"}


def rpc_metrics(addr, method):
    """(calls of method answered, calls in flight, the index's read counters)
    from match's /metrics."""
    with urllib.request.urlopen(f"http://{addr}/metrics", timeout=5) as r:
        text = r.read().decode()
    answered, inflight, reads = 0, 0, {}
    for line in text.splitlines():
        if line.startswith("lunamatch_rpc_requests_total{") and f'method="{method}"' in line:
            answered += int(float(line.rsplit(" ", 1)[1]))
        elif line.startswith("lunamatch_rpc_inflight"):
            inflight = int(float(line.rsplit(" ", 1)[1]))
        else:
            for k, name in READS.items():
                if line.startswith(name + " "):
                    reads[k] = int(line.rsplit(" ", 1)[1])
    return answered, inflight, reads


def bench(args, env, server_pid, kind, clients):
    """One `lunamatch bench` run; returns its JSON with the CPU accounting.

    The server's CPU per call is its CPU time over the whole run divided by
    the calls it answered over the same time, warm-up calls and calls
    finished after the client stopped measuring included (the client's
    count of measured calls leaves those out while their CPU is in)."""
    http = env["LUNAMATCH_HTTP_ADDR"]
    method = METHODS[kind]
    argv = [os.path.join(args.bin, "lunamatch"), "bench", kind, "--clients", str(clients),
            "--duration", str(args.duration), "--warmup", str(WARMUP), "--json"]
    a0, _, r0 = rpc_metrics(http, method)
    b0, t0 = cpu_total()
    s0 = proc_cpu(server_pid)
    w0 = proc_switches(server_pid)
    c0 = os.times()
    p = subprocess.run(argv, env=env, capture_output=True, text=True,
                       timeout=args.duration * 4 + 120)
    c1 = os.times()
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while True:
        a1, inflight, r1 = rpc_metrics(http, method)
        if inflight == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    b1, t1 = cpu_total()
    s1 = proc_cpu(server_pid)
    w1 = proc_switches(server_pid)
    if p.returncode != 0:
        raise RuntimeError(f"bench {kind}: exit {p.returncode}: {p.stderr.strip()}")
    if inflight != 0:
        raise RuntimeError(f"bench {kind}: {inflight} calls still in flight "
                           f"{DRAIN_TIMEOUT_S} s after the client stopped")
    r = json.loads(p.stdout)
    wall_jiffies = (t1 - t0) / (os.cpu_count() or 1)
    server_s = (s1 - s0) / HZ
    client_s = (c1.children_user - c0.children_user) + (c1.children_system - c0.children_system)
    busy_s = (b1 - b0) / HZ
    wall_s = wall_jiffies / HZ if wall_jiffies else 1
    ok = r["match"]["ok"] + r.get("echo", {}).get("ok", 0)
    r["cpu"] = {
        # The match phase and the echo phase share the run: the echo
        # server is in the client, so the server's calls are all in the
        # match phase, but its CPU over the run also holds its background
        # threads' time during the echo phase and the client's start.
        "server_s": server_s,
        "server_calls": a1 - a0,
        "server_ms_per_query": 1000 * server_s / (a1 - a0) if a1 > a0 else None,
        "client_s": client_s,
        "other_cores_busy": max(0.0, (busy_s - server_s - client_s) / wall_s),
        "calls": ok,
    }
    # The engine's work per call answered (warm-up calls included, as for
    # the CPU); absent when the server does not export the counters.
    if a1 > a0 and all(k in r0 and k in r1 for k in READS):
        r["reads_per_query"] = {k: (r1[k] - r0[k]) / (a1 - a0) for k in READS}
    # The hand-offs of a call between threads, as the same calls' count:
    # [voluntary (a thread waited), involuntary (it was preempted)].
    if a1 > a0:
        r["switches_per_call"] = {
            g: [(w1[g][i] - w0[g][i]) / (a1 - a0) for i in (0, 1)] for g in w0}
    return r


def positive_int(text):
    """An argparse type: an integer of at least 1."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not at least 1")
    return v


def positive_ints(text):
    """An argparse type: a comma-separated list of integers of at least 1."""
    return [positive_int(x) for x in text.split(",")]


def source_commit(src):
    """The source tree's commit as bench/run.sh names it, or "unknown"."""
    try:
        p = subprocess.run(["git", "-C", src, "describe", "--always", "--dirty"],
                           capture_output=True, text=True, timeout=30)
    except OSError:
        return "unknown"
    return p.stdout.strip() if p.returncode == 0 and p.stdout.strip() else "unknown"


def build_type(bindir):
    """CMAKE_BUILD_TYPE of the build whose programs are in bindir (its
    CMakeCache.txt is in bindir's parent) and its sanitizers, as bench/run.sh
    names them, or "unknown"."""
    cache = os.path.join(os.path.dirname(os.path.abspath(bindir)), "CMakeCache.txt")
    found = {}
    try:
        for line in open(cache):
            for key in ("CMAKE_BUILD_TYPE", "LUNAMATCH_SANITIZE"):
                if line.startswith(key + ":"):
                    found[key] = line.split("=", 1)[1].strip()
    except OSError:
        return "unknown"
    btype = found.get("CMAKE_BUILD_TYPE") or "unknown"
    if found.get("LUNAMATCH_SANITIZE"):
        btype += f" sanitize={found['LUNAMATCH_SANITIZE']}"
    return btype


def write_replacing(path, text):
    """Writes text to path through a temporary file renamed over it."""
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def run_size(args, postings, work):
    data = os.path.join(work, f"store-{postings}")
    env = dict(os.environ)
    env.update({
        "LUNAMATCH_DATA_DIR": data,
        "LUNAMATCH_TAXONOMY_FILE": os.path.join(args.src, "data/skills.tsv"),
        "LUNAMATCH_RATES_FILE": os.path.join(args.src, "data/rates.tsv"),
        "LUNAMATCH_FAIRNESS_FILE": os.path.join(args.src, "data/fairness/requirements.tsv"),
        "LUNAMATCH_GAZETTEER_FILE": os.path.join(args.src, "data/geo/cities.tsv"),
        "LUNAMATCH_MODEL_FILE": os.path.join(args.src, "data/model/default.json"),
        "LUNAMATCH_LOG_LEVEL": "warn",
    })
    out = {"postings": postings, "profiles": args.profiles}

    t = time.monotonic()
    p = subprocess.run([os.path.join(args.bin, "lunamatch-loadgen"), "--postings", str(postings),
                        "--profiles", str(args.profiles), "--seed", str(args.seed)],
                       env=env, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"loadgen: {p.stderr.strip()}")
    load_s = time.monotonic() - t
    out["load"] = {"seconds": load_s, "records_per_s": (postings + args.profiles) / load_s,
                   "output": p.stdout.strip()}

    http = f"127.0.0.1:{free_port()}"
    env.update({
        "LUNAMATCH_RPC_URL": f"tcp://127.0.0.1:{free_port()}",
        "LUNAMATCH_HTTP_ADDR": http,
        "LUNAMATCH_BROKERS": f"127.0.0.1:{free_port()}",  # events off: nothing listens
        "LUNAMATCH_EVENT_TOP_N": "0",
        "LUNAMATCH_WORKERS": str(args.workers),
        "LUNAMATCH_RPC_CONTEXTS": "256",
    })
    log = open(os.path.join(work, f"match-{postings}.log"), "w")
    t = time.monotonic()
    m = subprocess.Popen([os.path.join(args.bin, "lunamatch-match")], env=env,
                         stdout=subprocess.DEVNULL, stderr=log)
    try:
        while not http_ok(http, "/readyz"):
            if m.poll() is not None or time.monotonic() - t > START_TIMEOUT_S:
                raise RuntimeError(f"match did not get ready (log {log.name})")
            time.sleep(0.05)
        out["ready_s"] = time.monotonic() - t
        time.sleep(1)
        kib = rss_anon_kib(m.pid)
        out["rss_anon_mib"] = kib / 1024
        out["rss_anon_bytes_per_posting"] = kib * 1024 / postings
        out["runs"] = []
        for kind, clients in (("jobs", 1), ("jobs", args.clients), ("candidates", 1)):
            print(f"server bench: {postings} postings, {kind}, {clients} clients", file=sys.stderr)
            out["runs"].append(bench(args, env, m.pid, kind, clients))
    finally:
        m.send_signal(signal.SIGTERM)
        try:
            m.wait(timeout=30)
        except subprocess.TimeoutExpired:
            m.kill()
            m.wait()
        log.close()
    shutil.rmtree(data, ignore_errors=True)
    return out


def decision_log_settings():
    """The decision log settings match runs with (from the environment)."""
    return {"decision_log": int(os.environ.get("LUNAMATCH_DECISION_LOG", "1")),
            "decision_log_sync_ms": int(os.environ.get("LUNAMATCH_DECISION_LOG_SYNC_MS", "0"))}


def decision_log_text(params):
    if params.get("decision_log", 1) == 0:
        return "decision log off"
    ms = params.get("decision_log_sync_ms", 0)
    if ms == 0:
        return "decision log on (each answer after its decision is synced)"
    return f"decision log on (each answer after its decision is written, synced within {ms} ms)"


def text_report(doc):
    mc, s = doc["machine"], doc["size"]
    lines = [
        f"bench_server  {mc['date']}  commit {mc['commit']}",
        f"machine       {mc['nproc']} x {mc['cpu_model']}, {mc['kernel']}",
        f"build         {mc['build_type']}",
        f"load          {mc['loadavg_1m']:.2f} at the start (1 min average); other processes kept "
        + ", ".join(f"{r['cpu']['other_cores_busy']:.2f}" for r in s["runs"])
        + " cores busy during the three runs",
        f"data          {s['postings']} postings, {s['profiles']} profiles (lunamatch-loadgen, seed "
        f"{doc['params']['seed']}); match with {doc['params']['workers']} workers, events off, "
        f"{decision_log_text(doc['params'])}",
        f"runs          top_k 10, explain SUMMARY, {doc['params']['duration']} s each, closed loop "
        "over 127.0.0.1; then a raw nng echo of the same sizes and concurrency",
        "",
        f"store load          {s['load']['seconds']:.1f} s ({s['load']['records_per_s']:.0f} records/s)",
        f"start to /readyz    {s['ready_s']:.2f} s",
        f"match RssAnon       {s['rss_anon_mib']:.1f} MiB ({s['rss_anon_bytes_per_posting']:.0f} bytes per posting, profiles included)",
        "",
        f"{'run':<28} {'q/s':>8} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8} {'errors':>7} {'CPU ms/q':>9}",
    ]
    for r in s["runs"]:
        m, e = r["match"], r.get("echo")
        name = f"{r['method']}, {r['clients']} client{'s' if r['clients'] > 1 else ''}"
        cpq = r["cpu"]["server_ms_per_query"]
        lines.append(f"{name:<28} {m['qps']:8.1f} {m['p50_ms']:8.3f} {m['p90_ms']:8.3f} "
                     f"{m['p99_ms']:8.3f} {m['max_ms']:8.3f} {m['errors']:7d} {cpq:9.2f}")
        if e:
            lines.append(f"{'  nng echo, same load':<28} {e['qps']:8.1f} {e['p50_ms']:8.3f} "
                         f"{e['p90_ms']:8.3f} {e['p99_ms']:8.3f} {e['max_ms']:8.3f} {e['errors']:7d}")
            lines.append(f"{'  match / echo':<28} {r['ratio']['qps']:8.3f} {r['ratio']['p50']:8.1f} "
                         f"{'':>8} {r['ratio']['p99']:8.1f}")
    lines.append(f"{'':<28} (request {s['runs'][0]['match']['request_bytes']:.0f} B, "
                 f"response {s['runs'][0]['match']['response_bytes']:.0f} B on average)")
    reads = [r for r in s["runs"] if "reads_per_query" in r]
    if reads:
        lines.append("")
        lines.append(f"{'index reads per call':<28} {'entries':>9} {'reached':>8} {'scored':>7}")
        for r in reads:
            q = r["reads_per_query"]
            name = f"{r['method']}, {r['clients']} client{'s' if r['clients'] > 1 else ''}"
            lines.append(f"{name:<28} {q['entries']:9.0f} {q['reached']:8.0f} {q['scored']:7.0f}")
    switches = [r for r in s["runs"] if "switches_per_call" in r]
    if switches:
        lines.append("")
        lines.append(f"{'context switches per call':<28} {'match threads':>15} {'nng threads':>15}"
                     "   (waited + preempted)")
        for r in switches:
            w = r["switches_per_call"]
            name = f"{r['method']}, {r['clients']} client{'s' if r['clients'] > 1 else ''}"
            cells = [f"{w[g][0]:.2f} + {w[g][1]:.2f}" for g in ("match", "nng")]
            lines.append(f"{name:<28} {cells[0]:>15} {cells[1]:>15}")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--postings", type=positive_ints, default=[10000, 100000])
    ap.add_argument("--profiles", type=positive_int, default=DEFAULT_PROFILES)
    ap.add_argument("--clients", type=positive_int, default=16)
    ap.add_argument("--duration", type=positive_int, default=10)
    ap.add_argument("--workers", type=positive_int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--bin", default="build/bin")
    ap.add_argument("--out", default="bench/results")
    ap.add_argument("--commit", default=None, help="default: git describe of the source tree")
    ap.add_argument("--build-type", default=None,
                    help="default: CMAKE_BUILD_TYPE of the build --bin belongs to")
    ap.add_argument("--dir", default=os.environ.get("TMPDIR", "/tmp"))
    args = ap.parse_args()
    args.src = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if args.commit is None:
        args.commit = source_commit(args.src)
    if args.build_type is None:
        args.build_type = build_type(args.bin)
    os.makedirs(args.out, exist_ok=True)
    if args.dir:
        os.makedirs(args.dir, exist_ok=True)
    work = tempfile.mkdtemp(prefix="lunamatch-bench-server.", dir=args.dir)
    try:
        for n in args.postings:
            mc = machine(args)
            size = run_size(args, n, work)
            doc = {"benchmark": "server", "machine": mc,
                   "params": {"clients": args.clients, "duration": args.duration,
                              "workers": args.workers, "seed": args.seed, "top_k": 10,
                              "explain": "SUMMARY", **decision_log_settings()},
                   "size": size}
            # Another profile count than the default gets a file of its own.
            suffix = "" if args.profiles == DEFAULT_PROFILES else f"-profiles-{args.profiles}"
            base = os.path.join(args.out, f"server-{n}{suffix}")
            write_replacing(base + ".json", json.dumps(doc, indent=2) + "\n")
            write_replacing(base + ".txt", text_report(doc))
            print(text_report(doc), file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)


main()
