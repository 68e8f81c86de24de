#!/usr/bin/env bash
# A bias audit of the current engine on synthetic data: does a career break
# (a proxy for caring responsibilities, and so for sex) change who the engine
# puts forward?
#
# Every profile of the evaluation set is entered twice: as it is (group
# "no break") and with two years less experience, overall and per skill
# (group "two-year break"); nothing else differs. With the set's postings,
# the engine ranks all 88 for every posting (lunamatch-match on a temporary
# store, as data/eval/run.sh), and `lunamatch audit` compares the groups,
# selecting the first 5 and, separately, the scores above the median.
# Writes $EVAL_OUT/audit-career-break.{md,png,json} (BUILD=build,
# EVAL_OUT=bench/results).
set -euo pipefail
cd "$(dirname "$0")/../.."

build=${BUILD:-build}
out=${EVAL_OUT:-bench/results}
cmake --build "$build" --target lunamatch lunamatch-match lunamatch-devkafka >/dev/null
bin="$build/bin"
# shellcheck source=data/eval/service.sh
. data/eval/service.sh

set_dir="$tmp/set"
mkdir -p "$set_dir" "$out"
cp data/eval/postings.jsonl "$set_dir/"
python3 - data/eval "$set_dir" <<'PY'
import json, sys
src, dst = sys.argv[1], sys.argv[2]
profiles = [json.loads(l) for l in open(src + "/profiles.jsonl")]
with open(dst + "/profiles.jsonl", "w") as f, open(dst + "/demographics.csv", "w") as d:
    d.write("candidate_id,career_break\n")
    for p in profiles:
        a = dict(p, id=p["id"] + "-a")
        b = json.loads(json.dumps(p))
        b["id"] = p["id"] + "-b"
        b["years_experience"] = max(0, p["years_experience"] - 2)
        for s in b["skills"]:
            s["years"] = max(0.0, s.get("years", 0) - 2)
        for r in (a, b):
            f.write(json.dumps(r, separators=(",", ":")) + "\n")
        d.write(a["id"] + ",no break\n" + b["id"] + ",two-year break\n")
with open(dst + "/judgments.jsonl", "w") as f:
    for l in open(src + "/judgments.jsonl"):
        j = json.loads(l)
        for suffix in ("-a", "-b"):
            f.write(json.dumps(dict(j, candidate=j["candidate"] + suffix),
                               separators=(",", ":")) + "\n")
PY
"$bin/lunamatch" eval --set "$set_dir" --load >/dev/null
# From the results directory, so that the report links the chart by its name.
lm=$(cd "$bin" && pwd)/lunamatch
(cd "$out" && "$lm" audit --demographics "$set_dir/demographics.csv" \
	--jobs "$set_dir/postings.jsonl" --top 5 --save-rankings "$tmp/rankings.json" \
	--report audit-career-break.md --chart audit-career-break.png --json \
	>"$tmp/top5.json")
"$bin/lunamatch" audit --demographics "$set_dir/demographics.csv" \
	--rankings "$tmp/rankings.json" --above-median --json >"$tmp/median.json"
commit=$(git describe --always --dirty 2>/dev/null || echo unknown)
python3 - "$tmp/top5.json" "$tmp/median.json" "$out/audit-career-break.json" "$commit" <<'PY'
import datetime, json, sys
doc = {"benchmark": "audit-career-break",
       "machine": {"date": datetime.datetime.now(datetime.timezone.utc)
                   .strftime("%Y-%m-%dT%H:%M:%SZ"), "commit": sys.argv[4]},
       "top5": json.load(open(sys.argv[1])),
       "above_median": json.load(open(sys.argv[2]))}
with open(sys.argv[3], "w") as f:
    json.dump(doc, f, indent=2)
    f.write("\n")
for k in ("top5", "above_median"):
    for c in doc[k]["views"][0]["categories"]:
        print("%-13s %-15s rate %.4f impact %.3f%s" % (k, c["name"], c["rate"],
              c["impact"], "  FLAGGED" if c["flagged"] else ""))
PY
