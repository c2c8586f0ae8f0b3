#!/usr/bin/env bash
# Wall time, steps/s and loss of the README's bert/local run, median of RUNS cold processes.
# Usage: benches/bert_local.sh [RUNS]   (default 3; run from the repository root)
set -euo pipefail
runs=${1:-3}
cargo build --release -q -p grove-experiments --bin train
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for i in $(seq 1 "$runs"); do
  dir="$work/run$i"
  start=$(date +%s.%N)
  ./target/release/train --experiment=bert/local --mode=train_and_eval --model_dir="$dir" 2>/dev/null
  end=$(date +%s.%N)
  python3 - "$dir/metrics.jsonl" "$start" "$end" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
train = [l for l in lines if l["split"] == "train"]
valid = [l for l in lines if l["split"] == "validation"]
wall = float(sys.argv[3]) - float(sys.argv[2])
print(json.dumps({
    "wall_seconds": round(wall, 2),
    "median_steps_per_second": sorted(l["steps_per_second"] for l in train)[len(train) // 2],
    "first_training_loss": train[0]["training_loss"],
    "last_training_loss": train[-1]["training_loss"],
    "last_validation_loss": valid[-1]["validation_loss"],
    "last_masked_lm_accuracy": valid[-1]["masked_lm_accuracy"],
}))
PY
done | tee "$work/results"
python3 - "$work/results" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("median over", len(rows), "runs:",
      {k: statistics.median(r[k] for r in rows) for k in rows[0]})
PY
