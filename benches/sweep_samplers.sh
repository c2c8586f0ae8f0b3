#!/usr/bin/env bash
# TPE against random search on sweeps/mnist_local.yaml (learning rate, dropout, width; the
# median pruner), the same trial budget per sweep, over several sampler seeds; and a grid over
# the same space, for its worst point. Every sweep runs in a fresh directory, one trial at a
# time. Prints each sweep's best validation accuracy, then the mean per method.
# Usage: benches/sweep_samplers.sh [SEEDS] [N_TRIALS]   (default 5 and 30; from the repo root)
set -euo pipefail
seeds=${1:-5}
n_trials=${2:-30}
cargo build --release -q -p grove-experiments --bin train
train=./target/release/train
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
lscpu | grep -E "Model name|CPU family" | sed 's/  */ /g' >&2
if grep -qw avx512f /proc/cpuinfo; then isa=AVX-512; elif grep -qw avx2 /proc/cpuinfo; then isa=AVX2; else isa="no AVX2"; fi
echo "vector ISA: $isa" >&2
best() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["best"]["value"])' "$1/summary.json"; }
for seed in $(seq 0 $((seeds - 1))); do
  for method in tpe random; do
    sed -e "s/^method: .*/method: $method/" -e "s/^seed: .*/seed: $seed/" \
      -e "s/^n_trials: .*/n_trials: $n_trials/" sweeps/mnist_local.yaml > "$work/$method-$seed.yaml"
    $train --sweep="$work/$method-$seed.yaml" --model_dir="$work/$method-$seed" > /dev/null 2>&1
    echo "{\"method\": \"$method\", \"seed\": $seed, \"best\": $(best "$work/$method-$seed")}"
  done
done | tee "$work/results.jsonl"
# The grid: 3 learning rates x 3 dropout rates x the 5 widths, no pruning.
sed -e "s/^method: .*/method: grid/" -e "/^n_trials:/d" -e "/^pruner:/d" \
  -e "s/{distribution: log_uniform, min: 1.0e-5, max: 1.0}/{values: [1.0e-4, 3.0e-3, 1.0e-1]}/" \
  -e "s/{distribution: uniform, min: 0.0, max: 0.6, q: 0.05}/{values: [0.0, 0.3, 0.6]}/" \
  sweeps/mnist_local.yaml > "$work/grid.yaml"
$train --sweep="$work/grid.yaml" --model_dir="$work/grid" > /dev/null 2>&1
python3 - "$work/results.jsonl" "$work/grid/summary.json" <<'PY'
import json, statistics, sys
results = [json.loads(line) for line in open(sys.argv[1])]
grid = json.load(open(sys.argv[2]))
for method in ("tpe", "random"):
    values = [r["best"] for r in results if r["method"] == method]
    print(f"{method}: mean best {statistics.mean(values):.4f}, median {statistics.median(values):.4f}, "
          f"per seed {[round(v, 4) for v in values]}")
values = [t["value"] for t in grid["trials"] if t["value"] is not None]
print(f"grid ({len(values)} points): best {max(values):.4f}, worst {min(values):.4f}")
PY
