# data/eval/service.sh - sourced by the scripts of data/eval/: starts
# lunamatch-devkafka and lunamatch-match on a fresh temporary store and
# exports the LUNAMATCH_* variables that point the CLI at them. Needs $bin
# (the built programs); sets $tmp, removed with the processes on exit.

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

export LUNAMATCH_BROKERS="$(head -n1 "$tmp/devkafka.out")" \
	LUNAMATCH_DATA_DIR="$tmp/data" \
	LUNAMATCH_RPC_URL="tcp://127.0.0.1:$(port)" LUNAMATCH_HTTP_ADDR="127.0.0.1:$(port)" \
	LUNAMATCH_NOTIFY_URL="ipc://$tmp/notify.ipc" LUNAMATCH_POLL_MS=100 \
	LUNAMATCH_LOG_LEVEL=warn
"$bin/lunamatch-match" 2>"$tmp/match.log" &
pids+=($!)
"$bin/lunamatch" health --timeout-ms 10000 >/dev/null
