"""test_image.py - the runtime stage of the Dockerfile suffices, shown
without a container engine:

1. `cmake --install` of the build into a staging root with prefix /usr, as
   the build stage does.
2. Every installed binary's libraries (ldd) belong to the
   packages the runtime stage installs, to their dependencies, or to the
   Debian base image (priority "required"); every package the runtime stage
   installs provides at least one of them.
3. An image-like root is assembled: the staged tree, exactly the libraries
   ldd resolved, the Dockerfile's uid and gid, a TLS Secret of generated
   certificates. In a private network and mount namespace, with that root
   read-only and only the data volume and /tmp writable (as the manifests
   mount them), lunamatch-ingest and lunamatch-match run chrooted as uid
   10001 with only the environment the image and the base manifests set
   (Dockerfile ENV, ConfigMap, container env, PATH and HOSTNAME). The one
   value replaced is LUNAMATCH_BROKERS: the embedded broker stands in for
   the Kafka bootstrap service. Both answer /healthz and /readyz; the CLI,
   chrooted too, gets SERVING over mutual TLS and is refused without a
   client certificate; a posting produced to Kafka is stored by ingest and
   returned by match over RPC; docker-compose.yml's ingest health check
   passes against it; SIGTERM stops both with status 0.

Step 3 needs root (chroot, namespaces); without it the test reports a skip.
"""
import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

import yaml

from deploylib import (BIN, K8S, SKIP, SRC, apt_packages, check, container_env,
                       dockerfile_stages, failures, finish, image_env, render, run)

UID = 10001
POD = "lunamatch-0"
DEADLINE_S = 40  # bound of every wait below


def staged_install(stage):
    build = os.path.dirname(BIN)
    env = dict(os.environ, DESTDIR=stage)
    p = run(["cmake", "--install", build, "--prefix", "/usr"], env=env)
    if p.returncode != 0:
        print(p.stdout, p.stderr, file=sys.stderr)
        sys.exit(1)


def ldd(path, stage):
    """The libraries path loads: {soname: resolved path}, and the loader."""
    env = dict(os.environ, LD_LIBRARY_PATH=os.path.join(stage, "usr/lib"))
    out = run(["ldd", path], env=env).stdout
    libs, interp = {}, None
    for line in out.splitlines():
        m = re.match(r"\s*(\S+) => (\S+|not found)", line)
        if m:
            libs[m.group(1)] = m.group(2)
        elif re.match(r"\s*/\S+ \(0x", line):
            interp = line.split()[0]
    return libs, interp


def owner(path):
    """The Debian package that owns path (usr-merged or not), or None."""
    cands = {path, os.path.realpath(path)}
    for c in list(cands):
        if c.startswith("/usr/"):
            cands.add(c[4:])
        else:
            cands.add("/usr" + c)
    for c in cands:
        p = run(["dpkg", "-S", c])
        if p.returncode == 0:
            return p.stdout.split(":")[0].strip()
    return None


def depends_closure(pkgs):
    seen, todo = set(), list(pkgs)
    while todo:
        pk = todo.pop()
        if pk in seen:
            continue
        seen.add(pk)
        p = run(["dpkg-query", "-W", "-f=${Depends}, ${Pre-Depends}", pk])
        for alt in re.split(r"[,|]", p.stdout):
            name = alt.strip().split(" ")[0].split(":")[0]
            if name:
                todo.append(name)
    return seen


def required_priority(pk):
    return run(["dpkg-query", "-W", "-f=${Priority}", pk]).stdout.strip() == "required"


# ---- 1 and 2: the staged install and its libraries ---------------------------

def check_libraries(stage, runtime_pkgs):
    """Step 2. Returns the host paths of the libraries the binaries load and
    the dynamic loader."""
    allowed = depends_closure(runtime_pkgs)
    binaries = sorted(glob.glob(os.path.join(stage, "usr/bin/*")))
    names = [os.path.basename(b) for b in binaries]
    for want in ("lunamatch", "lunamatch-devkafka", "lunamatch-ingest", "lunamatch-match"):
        check(want in names, f"{want} is not installed")
    check(os.path.isfile(os.path.join(stage, "usr/share/lunamatch/skills.tsv")),
          "data files are not installed under /usr/share/lunamatch")
    needed, used_pkgs, interp = set(), set(), None
    for b in binaries:
        libs, ip = ldd(b, stage)
        interp = interp or ip
        for so, path in libs.items():
            if check(path != "not found", f"{os.path.basename(b)}: {so} not found") and \
                    not path.startswith(stage):
                needed.add(path)
    check(interp is not None, "no dynamic loader found by ldd")
    for path in sorted(needed):
        pk = owner(path)
        if not check(pk is not None, f"{path}: no Debian package owns it"):
            continue
        used_pkgs.add(pk)
        check(pk in allowed or required_priority(pk),
              f"{path} comes from {pk}, which the runtime stage does not install")
    for pk in runtime_pkgs:
        check(pk in used_pkgs, f"the runtime stage installs {pk}, which no binary loads")
    return sorted(needed), interp


# ---- 3: the services in an image-like root ---------------------------------------

def openssl(*args):
    p = run(["openssl", *args])
    if p.returncode != 0:
        raise RuntimeError("openssl " + " ".join(args) + ": " + p.stderr)


def make_certs(d):
    """A CA, a server certificate (server and client use, for the name
    localhost) and a client certificate, as PEM files in d."""
    os.makedirs(d)
    j = lambda n: os.path.join(d, n)  # noqa: E731
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "2", "-subj", "/CN=lunamatch test CA", "-keyout", j("ca.key"),
            "-out", j("ca.crt"))
    for name, eku, san in (("tls", "serverAuth,clientAuth", "DNS:localhost,DNS:lunamatch-rpc"),
                           ("client", "clientAuth", "DNS:client")):
        open(j(name + ".ext"), "w").write(f"extendedKeyUsage={eku}\nsubjectAltName={san}\n")
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-subj", f"/CN={name}", "-keyout", j(name + ".key"), "-out", j(name + ".csr"))
        openssl("x509", "-req", "-in", j(name + ".csr"), "-CA", j("ca.crt"), "-CAkey", j("ca.key"),
                "-CAcreateserial", "-days", "2", "-extfile", j(name + ".ext"), "-out", j(name + ".crt"))


def assemble_root(root, stage, libs, interp, certs):
    shutil.copytree(stage, root, symlinks=True)
    for path in libs + [interp]:
        dst = root + path
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy2(path, dst)  # the file the link names, under the linked name
    os.makedirs(root + "/etc", exist_ok=True)
    open(root + "/etc/passwd", "w").write(
        f"root:x:0:0:root:/root:/bin/false\nlunamatch:x:{UID}:{UID}::/var/lib/lunamatch:/bin/false\n")
    open(root + "/etc/hosts", "w").write("127.0.0.1 localhost\n")
    open(root + "/etc/group", "w").write(f"root:x:0:\nlunamatch:x:{UID}:\n")
    os.makedirs(root + "/dev")
    for name, minor in (("null", 3), ("zero", 5), ("random", 8), ("urandom", 9)):
        os.mknod(root + "/dev/" + name, 0o666 | 0o020000, os.makedev(1, minor))
        os.chmod(root + "/dev/" + name, 0o666)
    for d in ("/tmp", "/var/lib/lunamatch", "/etc/lunamatch/tls"):
        os.makedirs(root + d, exist_ok=True)
    # The Secret volume: defaultMode 0440, group fsGroup.
    for f in ("tls.crt", "tls.key", "ca.crt"):
        dst = root + "/etc/lunamatch/tls/" + f
        shutil.copy(os.path.join(certs, f), dst)
        os.chown(dst, 0, UID)
        os.chmod(dst, 0o440)


def manifest_env(container):
    """The environment of a container: Dockerfile ENV, then what the base
    manifests set, plus PATH and HOSTNAME as the container runtime adds."""
    objs = render(os.path.join(K8S, "base"))
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOSTNAME": POD}
    env.update(image_env(dockerfile_stages()[-1]))
    env.update(container_env(objs, container, POD))
    return env


def compose_healthcheck(service):
    """The shell text of a docker-compose.yml health check ["CMD", "bash", "-c", text]."""
    doc = yaml.safe_load(open(os.path.join(SRC, "docker-compose.yml")))
    test = doc["services"][service]["healthcheck"]["test"]
    if test[:3] != ["CMD", "bash", "-c"]:
        raise RuntimeError(f"compose {service}: health check is not bash -c: {test}")
    return test[3]


def http_status(url):
    try:
        with urllib.request.urlopen(url, timeout=3) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


def wait_for(what, fn):
    end = time.monotonic() + DEADLINE_S
    while time.monotonic() < end:
        if fn():
            return True
        time.sleep(0.2)
    return check(False, f"{what}: not within {DEADLINE_S} s")


def chrooted(root, argv, env, **kw):
    """argv run in root as uid/gid 10001 with exactly env."""
    cmd = ["chroot", f"--userspec={UID}:{UID}", f"--groups={UID}", root] + argv
    return subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, **kw)


def run_services(root, wd):
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    # The root read-only; the data volume and /tmp writable, as mounted by
    # the manifests (volumeClaimTemplate, emptyDir).
    subprocess.run(["mount", "--make-rprivate", "/"], check=True)
    subprocess.run(["mount", "--bind", root, root], check=True)
    subprocess.run(["mount", "-o", "remount,bind,ro", root], check=True)
    for sub in ("data", "tmp"):
        d = os.path.join(wd, sub)
        os.makedirs(d)
        os.chown(d, UID, UID)
        os.chmod(d, 0o1777 if sub == "tmp" else 0o750)
    subprocess.run(["mount", "--bind", os.path.join(wd, "data"), root + "/var/lib/lunamatch"], check=True)
    subprocess.run(["mount", "--bind", os.path.join(wd, "tmp"), root + "/tmp"], check=True)

    kafka = subprocess.Popen([os.path.join(BIN, "lunamatch-devkafka")], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True,
                             env={"PATH": os.environ["PATH"], "LUNAMATCH_LOG_LEVEL": "warn"})
    procs = {}
    try:
        brokers = kafka.stdout.readline().strip()
        check(brokers != "", "the embedded broker did not start")
        logs = {}
        for name in ("ingest", "match"):
            env = manifest_env(name)
            env["LUNAMATCH_BROKERS"] = brokers
            logs[name] = open(os.path.join(wd, name + ".log"), "w+")
            procs[name] = chrooted(root, [f"/usr/bin/lunamatch-{name}"], env,
                                   stdout=subprocess.DEVNULL, stderr=logs[name])
        menv = manifest_env("match")
        rpc = menv["LUNAMATCH_RPC_URL"]
        check(rpc.startswith("tls+tcp://0.0.0.0:"), f"base manifests: RPC URL {rpc} is not TLS on all addresses")
        port = rpc.rsplit(":", 1)[1]
        for name, p in (("ingest", 7702), ("match", 7701)):
            wait_for(f"{name} /healthz 200", lambda: http_status(f"http://127.0.0.1:{p}/healthz") == 200)
            wait_for(f"{name} /readyz 200", lambda: http_status(f"http://127.0.0.1:{p}/readyz") == 200)

        # docker-compose.yml's ingest health check (bash's /dev/tcp, the
        # image has no HTTP client) passes against the running ingest and
        # fails where nothing listens.
        hc = compose_healthcheck("ingest")
        check(run(["bash", "-c", hc]).returncode == 0, "compose's ingest health check fails on a healthy ingest")
        check(run(["bash", "-c", hc.replace("/7702", "/7799")]).returncode != 0,
              "compose's ingest health check passes with nothing listening")

        cli_env = {"PATH": menv["PATH"], "LUNAMATCH_RPC_URL": f"tls+tcp://localhost:{port}",
                   "LUNAMATCH_BROKERS": brokers, "LUNAMATCH_TOPIC_POSTINGS": menv["LUNAMATCH_TOPIC_POSTINGS"]}
        shutil.copy(os.path.join(wd, "certs", "client.crt"), wd + "/tmp/client.crt")
        shutil.copy(os.path.join(wd, "certs", "client.key"), wd + "/tmp/client.key")
        for f in ("client.crt", "client.key"):
            os.chown(os.path.join(wd, "tmp", f), UID, UID)
        mtls = dict(cli_env, LUNAMATCH_TLS_CERT="/tmp/client.crt", LUNAMATCH_TLS_KEY="/tmp/client.key",
                    LUNAMATCH_TLS_CA="/etc/lunamatch/tls/ca.crt")

        def cli(env, *args):
            p = chrooted(root, ["/usr/bin/lunamatch", *args], env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
            out, err = p.communicate(timeout=DEADLINE_S)
            return p.returncode, out, err

        rc, out, err = cli(mtls, "health")
        check(rc == 0, f"lunamatch health over mutual TLS: exit {rc}: {out}{err}")
        rc, out, err = cli(dict(cli_env, LUNAMATCH_TLS_CA="/etc/lunamatch/tls/ca.crt"),
                           "health", "--timeout-ms", "1000")
        check(rc != 0, "match answered a client without a certificate")

        sample = open(os.path.join(SRC, "data/samples/postings.jsonl")).readline()
        pid_ = re.search(r'"id"\s*:\s*"([^"]+)"', sample).group(1)
        open(wd + "/tmp/one.jsonl", "w").write(sample)
        rc, out, err = cli(cli_env, "produce", "postings", "/tmp/one.jsonl")
        check(rc == 0, f"produce: exit {rc}: {out}{err}")
        wait_for(f"posting {pid_} served by match",
                 lambda: cli(mtls, "get", "posting", pid_, "--json")[0] == 0)

        for name in ("match", "ingest"):
            procs[name].send_signal(signal.SIGTERM)
            try:
                rc = procs[name].wait(timeout=30)
            except subprocess.TimeoutExpired:
                rc = None
            check(rc == 0, f"{name}: SIGTERM gave exit status {rc} (30 s grace)")
        for name, f in logs.items():
            f.seek(0)
            text = f.read()
            if failures:
                print(f"--- {name} log ---\n{text[-4000:]}", file=sys.stderr)
    finally:
        for p in list(procs.values()) + [kafka]:
            if p.poll() is None:
                p.kill()
                p.wait()


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--inside":
        run_services(sys.argv[2], sys.argv[3])
        finish("deploy.image (services)")
    runtime = dockerfile_stages()[-1]
    runtime_pkgs = apt_packages(runtime)
    work = tempfile.mkdtemp(prefix="lunamatch-image.")
    try:
        stage = os.path.join(work, "stage")
        staged_install(stage)
        libs, interp = check_libraries(stage, runtime_pkgs)
        if failures:
            finish("deploy.image")
        missing = [t for t in ("unshare", "chroot", "ip", "openssl", "mount") if not shutil.which(t)]
        if os.geteuid() != 0 or missing:
            print("deploy.image: libraries checked; the services were not run: "
                  + ("needs root (chroot, namespaces)" if os.geteuid() != 0 else f"missing {missing}"))
            sys.exit(SKIP)
        # Root in a container may still be refused new namespaces.
        probe = subprocess.run(["unshare", "--net", "--mount", "--fork", "--", "true"],
                               capture_output=True, text=True, timeout=30)
        if probe.returncode != 0:
            print("deploy.image: libraries checked; the services were not run: "
                  f"namespaces refused ({probe.stderr.strip()})")
            sys.exit(SKIP)
        os.chmod(work, 0o755)
        root = os.path.join(work, "root")
        make_certs(os.path.join(work, "certs"))
        assemble_root(root, stage, libs, interp, os.path.join(work, "certs"))
        p = subprocess.run(["unshare", "--net", "--mount", "--fork", "--", sys.executable,
                            os.path.abspath(__file__), "--inside", root, work], timeout=240)
        check(p.returncode == 0, "the services in the image-like root failed (see above)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    finish("deploy.image")


main()
