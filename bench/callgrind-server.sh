#!/usr/bin/env bash
# Instructions per MatchJobs call of the running lunamatch-match, counted by
# valgrind's callgrind: exact and the same on a busy machine, so that two
# builds can be compared where wall-clock runs differ by more than a change.
#
#   bench/callgrind-server.sh [BUILD_DIR [REFERENCE_BUILD_DIR]]   (default: build)
#
# Writes a store of BENCH_CG_POSTINGS postings and 5000 profiles with
# lunamatch-loadgen (seed 1; kept in BENCH_DIR for the next run). The load
# goes into a temporary directory renamed into place only once loadgen
# succeeded and `lunamatch store stats` counts every record; a kept store
# is reused only when it holds those counts, otherwise it is written again.
# For each build (the reference first, when given), starts its
# lunamatch-match on that store under callgrind (one worker, events off),
# warms it with 20 calls, then counts BENCH_CG_CALLS MatchJobs calls
# (top_k 10, explain SUMMARY, seed 7: the same calls every run) made by `lunamatch bench` with
# one client, inside the worker's handling of each request only; a build
# whose calls failed (any of them) gets no count and the script fails. The result
# goes to $BENCH_OUT/server-callgrind-<postings>.txt: commits, build type,
# load, instructions per call (and the ratio to the reference) and the
# functions that take the most (inclusive). About two minutes per build.
#
#   BENCH_CG_POSTINGS  postings in the store (100000)
#   BENCH_CG_CALLS     counted calls (200)
#   BENCH_CG_CACHE     1: also simulate the caches (--cache-sim=yes, about
#                      twice as slow) and report the data reads that miss
#                      the first-level and the last-level cache per call:
#                      as exact as the instructions, and what a change of
#                      memory access (not of instructions) moves
#   BENCH_DIR          where the store and the raw callgrind files go ($TMPDIR or /tmp)
#   BENCH_OUT          results directory (bench/results)
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
-h | --help) sed -n '2,31p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
esac
build=${1:-build}
ref=${2:-}
postings=${BENCH_CG_POSTINGS:-100000}
calls=${BENCH_CG_CALLS:-200}
cache=${BENCH_CG_CACHE:-0}
case "$cache" in
0) cachesim=no ;;
1) cachesim=yes ;;
*) echo "callgrind-server: BENCH_CG_CACHE must be 0 or 1" >&2; exit 2 ;;
esac
dir=${BENCH_DIR:-${TMPDIR:-/tmp}}/lunamatch-callgrind
out=${BENCH_OUT:-bench/results}
command -v valgrind >/dev/null || { echo "callgrind-server: valgrind is not installed" >&2; exit 1; }
for b in "$build" $ref; do
	for p in lunamatch-match lunamatch-loadgen lunamatch; do
		[ -x "$b/bin/$p" ] || { echo "callgrind-server: no $b/bin/$p (build first)" >&2; exit 1; }
	done
done
mkdir -p "$dir" "$out"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
export LUNAMATCH_DATA_DIR="$dir/store-$postings" LUNAMATCH_LOG_LEVEL=warn \
	LUNAMATCH_TAXONOMY_FILE=data/skills.tsv LUNAMATCH_RATES_FILE=data/rates.tsv \
	LUNAMATCH_FAIRNESS_FILE=data/fairness/requirements.tsv LUNAMATCH_GAZETTEER_FILE=data/geo/cities.tsv \
	LUNAMATCH_MODEL_FILE=data/model/default.json LUNAMATCH_EVENT_TOP_N=0 LUNAMATCH_WORKERS=1
# loaded DIR: true when DIR is a store holding exactly the load's records.
loaded() {
	"$build/bin/lunamatch" store stats --json --data-dir "$1" 2>/dev/null |
		python3 -c 'import json, sys
try:
    s = json.load(sys.stdin)
except ValueError:
    sys.exit(1)
sys.exit(0 if (s["postings"], s["profiles"], s["changes"]) ==
         (int(sys.argv[1]), 5000, int(sys.argv[1]) + 5000) else 1)' "$postings"
}
if ! loaded "$LUNAMATCH_DATA_DIR"; then
	tmp="$LUNAMATCH_DATA_DIR.loading"
	rm -rf "$LUNAMATCH_DATA_DIR" "$tmp"
	if ! "$build/bin/lunamatch-loadgen" --data-dir "$tmp" --postings "$postings" \
		--profiles 5000 --seed 1 >/dev/null || ! loaded "$tmp"; then
		rm -rf "$tmp"
		echo "callgrind-server: lunamatch-loadgen did not write the store; nothing kept" >&2
		exit 1
	fi
	mv "$tmp" "$LUNAMATCH_DATA_DIR"
fi
vg=
stop_vg() { [ -z "$vg" ] || kill -9 $vg 2>/dev/null || true; }
trap stop_vg EXIT

# measure BUILD TAG: runs the calls against BUILD's match; leaves the
# callgrind dump in $dir/$TAG.out and prints the instructions per call.
measure() {
	local bin=$1/bin tag=$2 rpc http raw dump total errors
	rpc=tcp://127.0.0.1:$(free_port)
	http=127.0.0.1:$(free_port)
	raw="$dir/$tag.raw"
	rm -f "$raw"*
	# Only inside work(), the worker's handling of one request (decode,
	# query, explanations, reply packing): the service's other threads
	# (follower polls, Kafka clients retrying the absent broker) do not
	# count.
	LUNAMATCH_RPC_URL=$rpc LUNAMATCH_HTTP_ADDR=$http \
		LUNAMATCH_BROKERS=127.0.0.1:$(free_port) \
		valgrind --tool=callgrind --instr-atstart=no --collect-atstart=no \
		--toggle-collect=work --cache-sim=$cachesim --callgrind-out-file="$raw" \
		"$bin/lunamatch-match" >/dev/null 2>"$dir/$tag.log" &
	vg=$!
	# measure runs in a command substitution, a subshell: vg is set only
	# here, so the subshell stops the server itself when it ends early
	# (Ctrl-C included; a background job ignores SIGINT). Its stdout is not
	# the substitution's pipe, which would keep the caller waiting on it.
	trap stop_vg EXIT
	for _ in $(seq 1 1200); do
		curl -sf "http://$http/readyz" >/dev/null && break
		kill -0 $vg 2>/dev/null || { echo "callgrind-server: match exited (log $dir/$tag.log)" >&2; exit 1; }
		sleep 0.5
	done
	# This runs in a command substitution, where bash does not apply set -e:
	# every step that must succeed is checked, and a count of failed calls
	# (cheap or cut short by their deadline) is no count per call.
	"$bin/lunamatch" bench jobs --url "$rpc" --data-dir "$LUNAMATCH_DATA_DIR" --clients 1 --count 20 --warmup 0 \
		--no-echo >/dev/null &&
		callgrind_control -i on $vg >/dev/null &&
		"$bin/lunamatch" bench jobs --url "$rpc" --data-dir "$LUNAMATCH_DATA_DIR" --clients 1 --count "$calls" --warmup 0 \
			--seed 7 --no-echo >"$dir/$tag.bench" &&
		callgrind_control -i off $vg >/dev/null &&
		callgrind_control -d $vg >/dev/null || {
		kill $vg 2>/dev/null || true
		echo "callgrind-server: $tag: the calls or callgrind_control failed (log $dir/$tag.log)" >&2
		exit 1
	}
	# Every call made, none failed: the count divided by below is the calls
	# counted (--time-limit may end a phase early without an error).
	read -r made errors < <(awk '$1 == "MatchJobs" && $2 ~ /^[0-9]+$/ {print $2, $3}' "$dir/$tag.bench")
	if [ "${made:-}" != "$calls" ] || [ "${errors:-}" != 0 ]; then
		kill $vg 2>/dev/null || true
		echo "callgrind-server: $tag: ${made:-an unknown number} of $calls calls made, ${errors:-an unknown number} failed ($dir/$tag.bench)" >&2
		exit 1
	fi
	kill $vg 2>/dev/null || true
	wait $vg 2>/dev/null || true
	vg=
	dump=$(ls -S "$raw".* | head -1) # the dump, not the file written at exit
	mv "$dump" "$dir/$tag.out"
	# PROGRAM TOTALS: Ir, and with the cache simulation Dr Dw I1mr D1mr
	# D1mw ILmr DLmr DLmw after it.
	total=$(callgrind_annotate --show-percs=no "$dir/$tag.out" 2>/dev/null |
		awk '/PROGRAM TOTALS/ {for (i = 1; i <= NF; i++) gsub(",", "", $i);
			if ($1 !~ /^[0-9]+$/) exit;
			if (NF >= 10) print $1, $5, $8; else print $1; exit}')
	if [ -z "$total" ]; then
		echo "callgrind-server: no instruction count in $dir/$tag.out (log $dir/$tag.log)" >&2
		exit 1
	fi
	if [ "$cache" = 1 ]; then
		set -- $total
		[ $# = 3 ] || { echo "callgrind-server: no cache counts in $dir/$tag.out" >&2; exit 1; }
		echo "$(($1 / calls)) $(($2 / calls)) $(($3 / calls))"
	else
		echo $((total / calls))
	fi
}

# about BUILD: its source tree's commit and its build type, as bench/run.sh
# names them (a tree with uncommitted changes is "-dirty").
about() {
	local src sanitize
	src=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$1/CMakeCache.txt" 2>/dev/null)
	sanitize=$(sed -n 's/^LUNAMATCH_SANITIZE:[^=]*=//p' "$1/CMakeCache.txt" 2>/dev/null)
	echo "$(git -C "${src:-.}" describe --always --dirty 2>/dev/null || echo unknown)" \
		"($(sed -n 's/^CMAKE_BUILD_TYPE:[^=]*=//p' "$1/CMakeCache.txt" 2>/dev/null)${sanitize:+ sanitize=$sanitize})"
}

load=$(cut -d' ' -f1 /proc/loadavg)
# Named before the result file is rewritten, which would make the tree dirty.
about_build=$(about "$build")
about_ref=${ref:+$(about "$ref")}
# (measure's status is that of an assignment, so that set -e stops here.)
if [ -n "$ref" ]; then
	counts=$(measure "$ref" reference)
	read -r per_ref d1_ref ll_ref <<<"$counts"
fi
counts=$(measure "$build" build)
read -r per d1 ll <<<"$counts"
# ratio A B: A / B to three decimals.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", a / b}'; }
f="$out/server-callgrind-$postings.txt"
{
	echo "lunamatch-match under callgrind  $(date -u +%Y-%m-%dT%H:%MZ)  commit $about_build"
	echo "machine      $(nproc) x $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1), $(uname -sr)"
	echo "load         $load at the start (1 min average); instruction counts do not depend on it"
	echo "data         $postings postings, 5000 profiles (lunamatch-loadgen, seed 1); one worker, events off"
	echo "calls        $calls MatchJobs, top_k 10, explain SUMMARY, one client, seed 7, none failed"
	echo "counted      inside work() only: a request's decode, query, explanations and reply packing"
	echo
	echo "instructions per call   $per"
	if [ -n "$ref" ]; then
		echo "reference               $per_ref  (commit $about_ref, same calls)"
		echo "ratio                   $(ratio "$per" "$per_ref")"
	fi
	if [ "$cache" = 1 ]; then
		echo
		echo "data reads missing, per call (callgrind's cache simulation of this machine's caches):"
		echo "  first level          $d1${ref:+   reference $d1_ref   ratio $(ratio "$d1" "$d1_ref")}"
		echo "  last level           $ll${ref:+   reference $ll_ref   ratio $(ratio "$ll" "$ll_ref")}"
	fi
	echo
	echo "inclusive, per call, largest first (callgrind_annotate --inclusive=yes):"
	callgrind_annotate --inclusive=yes "$dir/build.out" >"$dir/annotate.txt" 2>/dev/null
	awk -v n="$calls" '/^ *[0-9,]+ +\(/ && /lunamatch|libprotobuf|libc|libnng|liblmdb/ {
			x=$1; gsub(",","",x); fn=$NF; if (fn ~ /^\[/) fn=$(NF-1); sub(/.*:/,"",fn);
			if (seen[fn]++) next;
			printf "  %-44s %10d\n", fn, x / n; if (++k == 30) exit }' "$dir/annotate.txt"
} >"$f"
echo "callgrind-server: $per instructions per call${ref:+ (reference $per_ref)}; $f"
