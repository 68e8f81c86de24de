#!/usr/bin/env bash
# Measures the ranking of the current engine on the evaluation set and
# records the numbers: starts lunamatch-devkafka and lunamatch-match on a
# fresh temporary store, runs `lunamatch eval --load`, and writes
# $EVAL_OUT/eval.json (date, commit, model, the eval report) and eval.txt
# (the table).
#
#   data/eval/run.sh            (BUILD=build, EVAL_OUT=bench/results)
set -euo pipefail
cd "$(dirname "$0")/../.."

build=${BUILD:-build}
out=${EVAL_OUT:-bench/results}
cmake --build "$build" --target lunamatch lunamatch-match lunamatch-devkafka >/dev/null
bin="$build/bin"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/lunamatch-eval.XXXXXX")
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

"$bin/lunamatch-devkafka" >"$tmp/devkafka.out" 2>"$tmp/devkafka.log" &
pids+=($!)
for _ in $(seq 100); do [ -s "$tmp/devkafka.out" ] && break; sleep 0.1; done
brokers=$(head -n1 "$tmp/devkafka.out")

export LUNAMATCH_BROKERS="$brokers" LUNAMATCH_DATA_DIR="$tmp/data" \
	LUNAMATCH_RPC_URL="tcp://127.0.0.1:$(port)" LUNAMATCH_HTTP_ADDR="127.0.0.1:$(port)" \
	LUNAMATCH_NOTIFY_URL="ipc://$tmp/notify.ipc" LUNAMATCH_POLL_MS=100 \
	LUNAMATCH_LOG_LEVEL=warn
"$bin/lunamatch-match" 2>"$tmp/match.log" &
pids+=($!)
"$bin/lunamatch" health --timeout-ms 10000 >/dev/null

mkdir -p "$out"
"$bin/lunamatch" eval --load --json >"$tmp/eval.json"
"$bin/lunamatch" eval >"$out/eval.txt"
commit=$(git describe --always --dirty 2>/dev/null || echo unknown)
btype=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$build/CMakeCache.txt")
python3 - "$tmp/eval.json" "$out/eval.json" "$commit" "${btype:-unset}" <<'PY'
import datetime, json, sys
report = json.load(open(sys.argv[1]))
doc = {"benchmark": "eval",
       "machine": {"date": datetime.datetime.now(datetime.timezone.utc)
                   .strftime("%Y-%m-%dT%H:%M:%SZ"),
                   "commit": sys.argv[3], "build_type": sys.argv[4]},
       "eval": report}
with open(sys.argv[2], "w") as f:
    json.dump(doc, f, indent=2)
    f.write("\n")
PY
cat "$out/eval.txt"
