#!/usr/bin/env bash
# Runs the lunamatch benchmarks and writes their results to bench/results/.
#
#   bench/run.sh [index] [store] [codec] [data] [server] [ingest] [events]
#                               (make bench; default: index, store, codec)
#
# Builds the benchmark programs in $BUILD (default build; configured with
# -DLUNAMATCH_WERROR=ON unless it was configured successfully before), then
# runs each one. Every benchmark writes <name>.json (machine, parameters,
# numbers) and <name>.txt (the same as a table) to $BENCH_OUT. A full run
# takes about 1.5 minutes on two cores. Sizes can be changed through the
# environment:
#
#   BENCH_OUT            results directory (bench/results)
#   BENCH_SEED           data seed (1)
#   BENCH_POSTINGS       index: posting counts (1000,10000,50000)
#   BENCH_PROFILES       index: profiles (5000)
#   BENCH_QUERIES        index: queries per latency phase (200)
#   BENCH_MAX_SECONDS    index: time cap of one latency phase (10)
#   BENCH_QPS_SECONDS    index: length of one throughput phase (3)
#   BENCH_THREADS        index: query threads for throughput (1,2)
#   BENCH_EMBEDDING_DIM  index: embedding length, 0 for none (0)
#   BENCH_RECORDS        store: records in the read store (50000)
#   BENCH_BATCHES        store: records per transaction (1,100,1000)
#   BENCH_GETS           store: timed gets (20000)
#   BENCH_PUT_SECONDS    store: time cap of one put phase (5)
#   BENCH_DIR            store: parent of the temporary stores ($TMPDIR or /tmp)
#   BENCH_CODEC_RECORDS  codec: postings per run (10000)
#   BENCH_DATA_ROUNDS    data: calls per lookup operation (200000)
#   BENCH_SERVER_POSTINGS   server: posting counts (10000,100000)
#   BENCH_SERVER_PROFILES   server: profiles (5000)
#   BENCH_SERVER_CLIENTS    server: clients of the concurrent run (16)
#   BENCH_SERVER_SECONDS    server: length of each run (10)
#   BENCH_SERVER_WORKERS    server: match's LUNAMATCH_WORKERS (2)
#   BENCH_INGEST_POSTINGS   ingest: postings waiting in the topic (100000)
#   BENCH_INGEST_PROFILES   ingest: profiles waiting in the topic (5000)
#   BENCH_INGEST_PARTITIONS ingest: partitions per topic (32)
#   BENCH_BROKERS           ingest: a real Kafka broker (default: lunamatch-devkafka)
#
# server (bench/server.py) measures the running lunamatch-match through nng
# with `lunamatch bench`, on a store written by lunamatch-loadgen: about a
# minute per posting count plus the store load. ingest (bench_ingest) runs
# lunamatch-ingest on 105k waiting records against kcat: about a minute.
# events (bench_ingest --probes 200) then starts lunamatch-match on that store
# and times 200 new postings to their first MatchEvent: several minutes (match
# loads 100k postings first). Both take BENCH_BROKERS.
set -euo pipefail
cd "$(dirname "$0")/.."

build=${BUILD:-build}
out=${BENCH_OUT:-bench/results}
seed=${BENCH_SEED:-1}
which=("$@")
[ ${#which[@]} -gt 0 ] || which=(index store codec)
for w in "${which[@]}"; do
	case "$w" in
	index | store | codec | data | server | ingest | events) ;;
	-h | --help) sed -n '2,46p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "bench: unknown benchmark $w (index, store, codec, data, server, ingest, events)" >&2; exit 2 ;;
	esac
done

if [ ! -f "$build/build.ninja" ]; then
	cmake -S . -B "$build" -G Ninja -DLUNAMATCH_WERROR=ON
fi
cmake --build "$build" --target bench_index bench_store bench_codec bench_data bench_ingest \
	lunamatch lunamatch-match lunamatch-loadgen lunamatch-ingest lunamatch-devkafka

# Numbers from a Debug or sanitizer build say little about production speed.
btype=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$build/CMakeCache.txt")
sanitize=$(sed -n 's/^LUNAMATCH_SANITIZE:[A-Z]*=//p' "$build/CMakeCache.txt")
if [ "$btype" = Debug ] || [ -n "$sanitize" ]; then
	echo "bench: warning: $build is a ${btype}${sanitize:+ sanitize=$sanitize} build;" \
		"use a RelWithDebInfo or Release build for numbers worth keeping" >&2
fi

commit=$(git describe --always --dirty 2>/dev/null || echo unknown)
mkdir -p "$out"
bin="$build/bin"
start=$(date +%s)

for w in "${which[@]}"; do
	echo "== bench_$w" >&2
	case "$w" in
	index)
		"$bin/bench_index" --out-dir "$out" --commit "$commit" --seed "$seed" \
			--postings "${BENCH_POSTINGS:-1000,10000,50000}" \
			--profiles "${BENCH_PROFILES:-5000}" \
			--queries "${BENCH_QUERIES:-200}" \
			--max-seconds "${BENCH_MAX_SECONDS:-10}" \
			--qps-seconds "${BENCH_QPS_SECONDS:-3}" \
			--threads "${BENCH_THREADS:-1,2}" \
			--embedding-dim "${BENCH_EMBEDDING_DIM:-0}"
		;;
	store)
		"$bin/bench_store" --out-dir "$out" --commit "$commit" --seed "$seed" \
			--records "${BENCH_RECORDS:-50000}" \
			--batches "${BENCH_BATCHES:-1,100,1000}" \
			--gets "${BENCH_GETS:-20000}" \
			--max-seconds "${BENCH_PUT_SECONDS:-5}" \
			--dir "${BENCH_DIR:-${TMPDIR:-/tmp}}"
		;;
	codec)
		"$bin/bench_codec" --out-dir "$out" --commit "$commit" --seed "$seed" \
			--records "${BENCH_CODEC_RECORDS:-10000}"
		;;
	data)
		"$bin/bench_data" --out-dir "$out" --commit "$commit" \
			--rounds "${BENCH_DATA_ROUNDS:-200000}"
		;;
	server)
		python3 bench/server.py --bin "$bin" --out "$out" --commit "$commit" \
			--build-type "$btype${sanitize:+ sanitize=$sanitize}" --seed "$seed" \
			--postings "${BENCH_SERVER_POSTINGS:-10000,100000}" \
			--profiles "${BENCH_SERVER_PROFILES:-5000}" \
			--clients "${BENCH_SERVER_CLIENTS:-16}" \
			--duration "${BENCH_SERVER_SECONDS:-10}" \
			--workers "${BENCH_SERVER_WORKERS:-2}" \
			--dir "${BENCH_DIR:-${TMPDIR:-/tmp}}"
		;;
	ingest)
		"$bin/bench_ingest" --out-dir "$out" --commit "$commit" --seed "$seed" \
			--bin-dir "$bin" \
			--postings "${BENCH_INGEST_POSTINGS:-100000}" \
			--profiles "${BENCH_INGEST_PROFILES:-5000}" \
			--partitions "${BENCH_INGEST_PARTITIONS:-32}" \
			${BENCH_BROKERS:+--brokers "$BENCH_BROKERS" --name ingest-kafka}
		;;
	events)
		"$bin/bench_ingest" --out-dir "$out" --commit "$commit" --seed "$seed" \
			--bin-dir "$bin" --probes 200 --name events \
			--postings "${BENCH_INGEST_POSTINGS:-100000}" \
			--profiles "${BENCH_INGEST_PROFILES:-5000}" \
			--partitions "${BENCH_INGEST_PARTITIONS:-32}" \
			${BENCH_BROKERS:+--brokers "$BENCH_BROKERS" --name events-kafka}
		;;
	esac
	echo >&2
done
echo "bench: results in $out/ ($(($(date +%s) - start)) s)" >&2
