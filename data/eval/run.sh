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
# shellcheck source=data/eval/service.sh
. data/eval/service.sh

# The commit measured, before this run rewrites the result files.
commit=$(git describe --always --dirty 2>/dev/null || echo unknown)
mkdir -p "$out"
# One day after the set's latest posted_at: freshness, and so the numbers,
# do not depend on the day of the measurement.
as_of=1795086400
"$bin/lunamatch" eval --load --as-of "$as_of" --json >"$tmp/eval.json"
"$bin/lunamatch" eval --as-of "$as_of" >"$out/eval.txt"
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
