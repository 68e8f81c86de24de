#!/usr/bin/env bash
# The lunamatch demo: the whole pipeline on the embedded dev broker.
#
#   scripts/demo.sh [--keep]      (make demo, make demo DEMO_ARGS=--keep)
#
# Starts lunamatch-devkafka, lunamatch-ingest and lunamatch-match with a fresh
# data directory, produces the sample postings and profiles, prints ranked and
# explained matches, a veto explanation, rejected messages in the dead-letter
# topic and the match events that reached the matches topic, then shuts
# everything down cleanly. With --keep (or LUNAMATCH_DEMO_KEEP=1) it leaves
# the services running and prints how to query them. Ports: LUNAMATCH_RPC_URL
# (default tcp://127.0.0.1:7700), LUNAMATCH_DEMO_MATCH_HTTP (127.0.0.1:7701),
# LUNAMATCH_DEMO_INGEST_HTTP (127.0.0.1:7702).
set -euo pipefail
cd "$(dirname "$0")/.."

keep=${LUNAMATCH_DEMO_KEEP:-0}
for a in "$@"; do
	case "$a" in
	--keep) keep=1 ;;
	-h | --help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "demo: unknown argument $a (see --help)" >&2; exit 2 ;;
	esac
done

bin=${LUNAMATCH_BIN:-build/bin}
for b in lunamatch lunamatch-devkafka lunamatch-ingest lunamatch-match; do
	[ -x "$bin/$b" ] || { echo "demo: $bin/$b is missing; run make build" >&2; exit 1; }
done

run=$(mktemp -d "${TMPDIR:-/tmp}/lunamatch-demo.XXXXXX")
export LUNAMATCH_DATA_DIR="$run/var"
export LUNAMATCH_RPC_URL=${LUNAMATCH_RPC_URL:-tcp://127.0.0.1:7700}
export LUNAMATCH_LOG_LEVEL=${LUNAMATCH_LOG_LEVEL:-warn}
# Health and metrics ports of the two services (they cannot share one).
ingest_http=${LUNAMATCH_DEMO_INGEST_HTTP:-127.0.0.1:7702}
match_http=${LUNAMATCH_DEMO_MATCH_HTTP:-127.0.0.1:7701}
pids=()

stop_all() {
	local rc=$?
	if [ "$keep" = 1 ] && [ $rc -eq 0 ]; then
		return
	fi
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
		kill -TERM "${pids[$i]}" 2>/dev/null || true
		for _ in $(seq 100); do
			kill -0 "${pids[$i]}" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "${pids[$i]}" 2>/dev/null || true
		wait "${pids[$i]}" 2>/dev/null || true
	done
	# The logs go with the run directory: a failed demo shows their ends
	# first, which say why (a port in use, a broker that lost messages).
	if [ $rc -ne 0 ] && [ $rc -ne 130 ]; then
		for f in "$run"/*.log; do
			[ -s "$f" ] || continue
			echo "demo: the last lines of ${f##*/}:" >&2
			tail -n 20 "$f" >&2
		done
	fi
	rm -rf "$run"
	exit $rc
}
trap stop_all EXIT
trap 'exit 130' INT TERM

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# Waits up to $1 seconds (wall clock: each try may itself take a while on a
# loaded machine) for the command in the remaining arguments to succeed.
wait_for() {
	local end=$((SECONDS + $1))
	shift
	until "$@" >/dev/null 2>&1; do
		if [ "$SECONDS" -ge "$end" ]; then
			echo "demo: timed out waiting for: $*" >&2
			return 1
		fi
		sleep 0.1
	done
}

say "starting the embedded Kafka broker"
"$bin/lunamatch-devkafka" >"$run/devkafka.out" 2>"$run/devkafka.log" &
pids+=($!)
wait_for 20 test -s "$run/devkafka.out"
LUNAMATCH_BROKERS=$(head -n 1 "$run/devkafka.out")
export LUNAMATCH_BROKERS
echo "bootstrap: $LUNAMATCH_BROKERS"

say "starting lunamatch-ingest and lunamatch-match"
"$bin/lunamatch-ingest" --http "$ingest_http" 2>"$run/ingest.log" &
pids+=($!)
"$bin/lunamatch-match" --http "$match_http" 2>"$run/match.log" &
pids+=($!)
wait_for 30 "$bin/lunamatch" health
"$bin/lunamatch" health

say "producing the sample postings and profiles"
"$bin/lunamatch" produce postings data/samples/postings.jsonl
"$bin/lunamatch" produce profiles data/samples/profiles.jsonl
# A few messages that ingest must reject, sent as written (--raw: no local
# checks, keyed by their id when they have one).
printf '%s\n' '{"id":"job-bad-1","version":1}' \
	'{"id":"job-bad-2","version":1,"title":"Analyst","salary":{"min":9,"max":1,"currency":"USD"}}' \
	'{not json' |
	"$bin/lunamatch" produce postings - --raw

npostings=$(grep -c . data/samples/postings.jsonl)
nprofiles=$(grep -c . data/samples/profiles.jsonl)
stored() {
	"$bin/lunamatch" store stats --json | python3 -c \
		"import json,sys; s=json.load(sys.stdin); sys.exit(0 if s['postings']>=$npostings and s['profiles']>=$nprofiles else 1)"
}
wait_for 90 stored
"$bin/lunamatch" store stats

# The index follows the store's change log; wait until it has caught up.
indexed() {
	local seq
	seq=$("$bin/lunamatch" store stats --json | python3 -c "import json,sys; print(json.load(sys.stdin)['last_seq'])")
	"$bin/lunamatch" health --json | python3 -c \
		"import json,sys; s=json.load(sys.stdin); sys.exit(0 if int(s.get('index_seq',0))>=$seq and int(s.get('profiles',0))>=$nprofiles else 1)"
}
wait_for 90 indexed
# The three rejects are in the dead-letter topic once ingest has counted them
# as delivered there.
dead_letters() {
	python3 -c "
import sys, urllib.request
text = urllib.request.urlopen('http://$ingest_http/metrics', timeout=5).read().decode()
n = sum(float(l.split()[-1]) for l in text.splitlines() if l.startswith('lunamatch_ingest_dlq_total'))
sys.exit(0 if n >= 3 else 1)"
}
wait_for 90 dead_letters

say "top jobs for cand-ml-lead-chicago (a machine-learning lead in Chicago)"
"$bin/lunamatch" match jobs --candidate cand-ml-lead-chicago --top 5

say "top jobs for an ICU nurse and an electrician: no machine-learning roles"
"$bin/lunamatch" match jobs --candidate cand-rn-icu-houston --top 3
"$bin/lunamatch" match jobs --candidate cand-electrician-phoenix --top 3

say "top candidates for job-dfs-sr-mgr-ml (Senior Manager, Machine Learning)"
"$bin/lunamatch" match candidates --job job-dfs-sr-mgr-ml --top 5

say "why cand-ml-lead-chicago fits job-dfs-sr-mgr-ml"
"$bin/lunamatch" explain --candidate cand-ml-lead-chicago --job job-dfs-sr-mgr-ml

say "why cand-ml-junior-chicago is not matched to job-dfs-sr-mgr-ml (vetoes)"
"$bin/lunamatch" explain --candidate cand-ml-junior-chicago --job job-dfs-sr-mgr-ml || true

say "rejected messages in the dead-letter topic"
"$bin/lunamatch" dlq tail --from-beginning --count 3

say "new-match events on lunamatch.matches.v1 (first 10)"
"$bin/lunamatch" watch --from-beginning --count 10 --timeout-ms 60000

if [ "$keep" = 1 ]; then
	say "still running (--keep)"
	cat <<INFO
Data directory: $run/var     Logs: $run/*.log
export LUNAMATCH_BROKERS=$LUNAMATCH_BROKERS LUNAMATCH_DATA_DIR=$run/var
export LUNAMATCH_RPC_URL=$LUNAMATCH_RPC_URL
$bin/lunamatch match jobs --candidate cand-ml-lead-chicago
$bin/lunamatch explain --candidate cand-ml-junior-chicago --job job-dfs-sr-mgr-ml
$bin/lunamatch watch
curl -s http://$match_http/metrics
Stop everything with: kill ${pids[*]}
INFO
	exit 0
fi
say "shutting down"
