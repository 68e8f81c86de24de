"""test_dockerfile.py - the Dockerfile passes hadolint (every rule at style
level and above, except the ones it disables inline with a reason) and
follows the project's own rules for the image:

- two stages on Debian 12: a build stage and a runtime stage built from the
  same slim base; the runtime installs no compiler, headers or -dev package;
- the runtime runs as a fixed numeric non-root uid and gid;
- the OCI labels title, description, version, revision and created are set;
- every variable an instruction other than RUN expands is declared in its
  stage (a global ARG reaches the FROM lines only);
- the binaries, the library and the data files come from the build stage,
  the data files to /usr/share/lunamatch;
- apt lists are removed in the RUN that created them; no ADD;
- .dockerignore keeps build trees and the git directory out of the context;
- the ports: the image sets no LUNAMATCH_HTTP_ADDR (both services read it,
  each for its own port), so with its ENV alone they listen on 127.0.0.1,
  which a published port does not reach; the `docker run` commands of
  docs/deployment.md publish every EXPOSEd port, each to a service that
  listens on it beyond the loopback, and both services accept the
  environment the image and those commands give them.

A deliberately broken Dockerfile must fail hadolint: the lint can fail.
"""
import fnmatch
import json
import os
import re
import shlex
import tempfile

from deploylib import (BIN, SRC, apt_packages, check, config_error, dockerfile_stages,
                       finish, image_env, program_default, run, tool)

dockerfile = os.path.join(SRC, "Dockerfile")

p = run([tool("hadolint"), "--failure-threshold", "style", dockerfile])
check(p.returncode == 0, "hadolint: " + (p.stdout + p.stderr).strip())

with tempfile.NamedTemporaryFile("w", suffix=".Dockerfile", delete=False) as f:
    f.write("FROM debian:latest\nRUN apt-get install curl\nADD x /x\n")
bad = run([tool("hadolint"), "--failure-threshold", "style", f.name])
os.unlink(f.name)
check(bad.returncode != 0 and "DL3007" in bad.stdout, "hadolint accepts a Dockerfile it must reject")

stages = dockerfile_stages()
check(len(stages) == 2, f"two stages expected, found {len(stages)}")
build, runtime = stages[0], stages[-1]
for s in stages:
    check(re.fullmatch(r"debian:12(\.\d+)?(-slim)?", s.base) is not None,
          f"stage {s.name}: base {s.base} is not Debian 12")
check(runtime.base.endswith("-slim"), f"runtime base {runtime.base} is not a slim image")

pkgs = apt_packages(runtime)
check(pkgs, "the runtime stage installs its libraries with apt-get")
for pk in pkgs:
    check(not re.search(r"-dev$|^build-essential$|^gcc|^cmake$|^pkg-config$|compiler", pk),
          f"runtime installs build-time package {pk}")
check("libnng-dev" in apt_packages(build), "the build stage installs the build dependencies")

users = [rest for instr, rest in runtime.instructions if instr == "USER"]
check(len(users) >= 1, "runtime sets USER")
if users:
    m = re.fullmatch(r"(\d+)(?::(\d+))?", users[-1].strip())
    check(m is not None and int(m.group(1)) != 0 and m.group(2) is not None and int(m.group(2)) != 0,
          f"USER {users[-1]} is not a numeric non-root uid:gid")

labels = " ".join(rest for instr, rest in runtime.instructions if instr == "LABEL")
for k in ("title", "description", "version", "revision", "created", "base.name", "base.digest"):
    check(f"org.opencontainers.image.{k}=" in labels, f"OCI label org.opencontainers.image.{k} missing")
# The base can be pinned by digest: DEBIAN_DIGEST, empty by default (the
# tag alone, as the stages' bases above), pins every stage when set, and
# the runtime's base.digest label says it.
check(re.search(r'org\.opencontainers\.image\.base\.digest="\$\{DEBIAN_DIGEST\}"', labels) is not None,
      "the label org.opencontainers.image.base.digest is not ${DEBIAN_DIGEST}")
digest = "sha256:" + "0123456789abcdef" * 4
pinned = dockerfile_stages(build_args={"DEBIAN_DIGEST": digest})
for s, p in zip(stages, pinned):
    check(p.base == f"{s.base}@{digest}", f"stage {s.name}: DEBIAN_DIGEST does not pin the base: {p.base}")

copies = [rest for instr, rest in runtime.instructions if instr == "COPY"]
check(any("--from=" + build.name in c and "/usr/share/lunamatch" in c.split()[-1] for c in copies),
      "data files are not copied to /usr/share/lunamatch from the build stage")
check(any("--from=" + build.name in c and c.split()[-1].rstrip("/") == "/usr/bin" for c in copies),
      "binaries are not copied to /usr/bin from the build stage")
# The services link the internal library statically; the public client
# library is for client programs, not for the image.
check(not any("liblunamatch" in c for c in copies), "a lunamatch library is copied into the runtime")

# A variable that an instruction other than RUN expands must be declared in
# its stage (ARG or ENV): an ARG before the first FROM is seen by the FROM
# lines only, and expands to nothing inside a stage that does not declare it
# again.
EXPANDED = ("ADD", "COPY", "ENV", "EXPOSE", "LABEL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR")
for s in stages:
    declared = set()
    for instr, rest in s.instructions:
        if instr in EXPANDED:
            for v in re.findall(r"\$\{(\w+)[}:]|\$(\w+)", rest):
                name = v[0] or v[1]
                check(name in declared,
                      f"stage {s.name}: {instr} expands ${name}, which the stage does not declare (ARG)")
        if instr == "ARG":
            declared.add(rest.split("=")[0].strip())
        elif instr == "ENV":
            declared |= {kv.partition("=")[0] for kv in shlex.split(rest)}

for s in stages:
    for instr, rest in s.instructions:
        check(instr != "ADD", f"stage {s.name}: ADD used (COPY is explicit)")
        if instr == "RUN" and "apt-get update" in rest:
            check("rm -rf /var/lib/apt/lists" in rest, f"stage {s.name}: apt lists left in a layer")

ignore = [ln.strip() for ln in open(os.path.join(SRC, ".dockerignore"))
          if ln.strip() and not ln.lstrip().startswith("#")]
for pat in (".git", "build", "build-*"):
    check(pat in ignore, f".dockerignore does not exclude {pat}")

# Every directory the top CMakeLists.txt always adds (an add_subdirectory
# at the start of a line, outside any if) is in the build context: the
# image's cmake step fails on a missing one.
def excluded(path):
    parts = path.split("/")
    return any(fnmatch.fnmatch("/".join(parts[:i]), pat.rstrip("/"))
               for pat in ignore for i in range(1, len(parts) + 1))

always = re.findall(r"^add_subdirectory\(([^)\s]+)\)",
                    open(os.path.join(SRC, "CMakeLists.txt")).read(), re.M)
check(always, "no add_subdirectory found in CMakeLists.txt")
for d in always:
    check(not excluded(d), f".dockerignore leaves out {d}, which CMakeLists.txt always adds")

# The ports. A service of the image listens on 127.0.0.1 unless its
# environment says otherwise, and a port published with `docker run -p`
# reaches only what listens beyond the loopback inside the container.
env = image_env(runtime)
check("LUNAMATCH_HTTP_ADDR" not in env,
      "the image sets LUNAMATCH_HTTP_ADDR, which ingest and match both read, each for its own port")
exposed = {int(p.split("/")[0]) for instr, rest in runtime.instructions if instr == "EXPOSE"
           for p in rest.split()}
cmd = [json.loads(rest) for instr, rest in runtime.instructions if instr == "CMD"]
default_prog = cmd[-1][0] if cmd else None
helptext = run([os.path.join(BIN, "lunamatch-match"), "--help"]).stdout
http_default = dict((prog, addr) for addr, prog in
                    re.findall(r"(\S+:\d+) (ingest|match)\b", helptext.split("LUNAMATCH_HTTP_ADDR")[0]
                               .rsplit("--http ", 1)[-1]))
check(set(http_default) == {"ingest", "match"}, f"--help gives no default HTTP address per program: {http_default}")
rpc_default = program_default("lunamatch-match", "LUNAMATCH_RPC_URL")
LOOPBACK = ("127.0.0.1", "localhost", "[::1]", "::1")
# Options of `docker run` that take a value.
VALUED = {"-e", "--env", "-p", "--publish", "-v", "--volume", "--name", "--pid", "--network",
          "--net", "--restart", "--tmpfs", "--cap-drop", "--cap-add", "--security-opt", "-u",
          "--user", "--mount", "--env-file", "-w", "--workdir", "-h", "--hostname", "--entrypoint",
          "-l", "--label"}


def docker_runs(text):
    """The `docker run` commands of the sh blocks of a Markdown text, as
    argument lists (continuation lines joined)."""
    out = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words[:2] == ["docker", "run"]:
                out.append(words[2:])
    return out


def parse_run(args):
    """(environment, published container ports, program) of docker run args."""
    runenv, ports, i = {}, set(), 0
    while i < len(args) and args[i].startswith("-"):
        opt, _, val = args[i].partition("=")
        if opt in VALUED and not val:
            i += 1
            val = args[i]
        if opt in ("-e", "--env"):
            k, _, v = val.partition("=")
            runenv[k] = v
        elif opt in ("-p", "--publish"):
            ports.add(int(val.split("/")[0].rsplit(":", 1)[-1]))
        i += 1
    rest = args[i + 1:]  # past the image
    return runenv, ports, (rest[0] if rest else default_prog)


def host_port(addr):
    """(host, port) of host:port, [v6]:port or scheme://host:port."""
    hp = addr.split("://", 1)[-1]
    host, _, port = hp.rpartition(":")
    return host, int(port) if port.isdigit() else None


docs = open(os.path.join(SRC, "docs", "deployment.md")).read()
published, services = set(), set()
for args in docker_runs(docs):
    runenv, ports, prog = parse_run(args)
    if not ports:
        continue
    name = prog.replace("lunamatch-", "")
    if not check(name in ("ingest", "match"), f"docs: docker run publishes {sorted(ports)} for {prog}"):
        continue
    services.add(name)
    full = dict(env, **runenv)
    listen = [full.get("LUNAMATCH_HTTP_ADDR") or http_default.get(name, "")]
    if name == "match":
        listen.append(full.get("LUNAMATCH_RPC_URL") or rpc_default)
    listening = dict(host_port(a)[::-1] for a in listen)
    for port in sorted(ports):
        host = listening.get(port)
        check(host is not None, f"docs: docker run publishes port {port} of {prog}, "
              f"which listens on {listen} only")
        check(host is None or host not in LOOPBACK,
              f"docs: docker run publishes port {port} of {prog}, which listens on the "
              f"loopback there ({host}): nothing outside the container reaches it")
    published |= ports
    err = config_error(prog, full)
    check(err is None, f"docs: {prog} refuses the environment of its docker run example: {err}")
check(services == {"ingest", "match"},
      f"docs/deployment.md has a docker run example with published ports for {sorted(services)} "
      "only; both services need one")
check(published == exposed, f"the docs' docker run examples publish {sorted(published)}, "
      f"the image exposes {sorted(exposed)}")

finish("deploy.dockerfile")
