#!/usr/bin/env bash
# Reader hyper-parameter sweep on a GPU machine (the 2-core CPU machines take ~40 min an epoch).
# Every run picks its best epoch on PIAF dev; the sweep keeps the run with the best dev F1.
# Configurations: one run per line of $CONFIGS (name, then key=value for qa.train_reader).
# Usage: E5_SOURCE=/path/to/e5-small-q4.bin OUT=/some/dir bash bench/reader_sweep.sh
#   E5_SOURCE="$(.venv/bin/python -c 'from index.e5_convert import source_path; print(source_path())')" gives the wheel's file.
#   E5_SOURCE may be the wheel's file or a trimmed copy from qa.train_reader.trim_source.
set -u
: "${E5_SOURCE:?set E5_SOURCE}" "${OUT:?set OUT}"
PY=${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
LIMIT=${LIMIT:-480}   # seconds per run; a run stopped early keeps its best epoch so far
RUNS=${RUNS:-/tmp/reader-sweep}
mkdir -p "$RUNS" "$OUT"
run() {
  local name=$1; shift
  PYTHONPATH=. timeout "$LIMIT" "$PY" -m qa.train_reader source="$E5_SOURCE" run_dir="$RUNS/$name" \
    out_artifact="$RUNS/$name/reader.zip" checkpoint_every=100000 max_steps=0 "$@" >"$RUNS/$name.log" 2>&1 &
}
CONFIGS=${CONFIGS:-bench/reader_sweep.txt}
while read -r name args; do
  case "$name" in ''|\#*) continue ;; esac
  # shellcheck disable=SC2086
  run "$name" $args
done <"$CONFIGS"
wait
PYTHONPATH=. "$PY" - "$RUNS" "$OUT" <<'PY'
import json, sys, shutil
from pathlib import Path
from qa.reader_artifact import read_artifact_meta
runs, out = Path(sys.argv[1]), Path(sys.argv[2])
rows = []
for z in sorted(runs.glob("*/reader.zip")):
    m = read_artifact_meta(z)
    rows.append({"run": z.parent.name, "dev_em": m["dev_em"], "dev_f1": m["dev_f1"], "step": m["step"],
                 "neg_rejected": m["neg_rejected"], "answerable_answered": m["answerable_answered"],
                 "train_seconds": m["train_seconds"], "config": m["train_config"]})
rows.sort(key=lambda r: -r["dev_f1"])
for r in rows:
    print(f'{r["run"]}: dev EM {r["dev_em"]:.1f} F1 {r["dev_f1"]:.1f} step {r["step"]} rejects {100*r["neg_rejected"]:.1f}% ({r["train_seconds"]:.0f}s)')
(out / "sweep.json").write_text(json.dumps(rows, indent=1))
if rows:
    shutil.copy(runs / rows[0]["run"] / "reader.zip", out / "best.zip")
PY
if [ "${SOUP:-0}" = 1 ]; then
  PYTHONPATH=. "$PY" bench/reader_soup.py --source "$E5_SOURCE" --out "$OUT/soup.zip" "$RUNS"/*/reader.zip 2>&1 | grep -v INFO
  (cd "$OUT" && split -b 15M -d soup.zip soup.zip.part && rm soup.zip soup.zip.sha256)
fi
for f in "$RUNS"/*.log; do echo "== $f"; grep -E "dev after|features|training on|Error|error" "$f"; done
tar czf "$OUT/logs.tgz" -C "$RUNS" $(cd "$RUNS" && ls *.log)
if [ -f "$OUT/best.zip" ]; then (cd "$OUT" && split -b 15M -d best.zip best.zip.part && rm best.zip); fi
