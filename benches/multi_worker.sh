#!/usr/bin/env bash
# multi_worker_mirrored on this machine, interleaved (every round runs each case once, in fresh
# processes): the BERT-mini step of one process with 2 compute threads (2 `mirrored` replicas)
# against 2 MPI workers of 1 thread each (the same global batch of 16), with the share of the
# workers' step spent all-reducing; then the all-reduce of BERT-mini's gradients alone, in
# 25 MiB buckets and in one call. Prints one JSON line per measurement, then the medians.
# Needs OpenMPI (Debian: openmpi-bin libopenmpi-dev libclang-dev).
# Usage: benches/multi_worker.sh [ROUNDS]   (default 5; run from the repository root)
set -euo pipefail
rounds=${1:-5}
cargo build --release -q -p grove-benches --features grove-benches/mpi --bin grove-bench
bench=./target/release/grove-bench
mpi=(mpirun --allow-run-as-root --oversubscribe -np 2)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
lscpu | grep -E "Model name|CPU family" | sed 's/  */ /g' >&2
if grep -qw avx512f /proc/cpuinfo; then isa=AVX-512; elif grep -qw avx2 /proc/cpuinfo; then isa=AVX2; else isa="no AVX2"; fi
echo "vector ISA: $isa" >&2
parameters=$(RAYON_NUM_THREADS=2 $bench bert --threads 2 --warmup 1 --steps 1 \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["parameters"])')
for round in $(seq 1 "$rounds"); do
  RAYON_NUM_THREADS=2 $bench bert --threads 2 \
    | python3 -c 'import json,sys; r=json.load(sys.stdin); r["case"]="1 process x 2 threads"; print(json.dumps(r))'
  RAYON_NUM_THREADS=1 "${mpi[@]}" $bench bert --threads 1 \
    --set runtime.distribution_strategy=multi_worker_mirrored \
    | python3 -c 'import json,sys; r=json.load(sys.stdin); r["case"]="2 workers x 1 thread"; print(json.dumps(r))'
  for bucket in 25 0; do
    RAYON_NUM_THREADS=1 "${mpi[@]}" $bench all-reduce --elements "$parameters" --bucket-mb $bucket \
      | python3 -c "import json,sys; r=json.load(sys.stdin); r['case']='all-reduce, bucket_mb $bucket'; print(json.dumps(r))"
  done
done | tee "$work/results"
python3 - "$work/results" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
for case in dict.fromkeys(r["case"] for r in rows):
    mine = [r for r in rows if r["case"] == case]
    keys = [k for k in ("ms_per_step", "all_reduce_fraction", "median_ms", "bytes_per_worker")
            if k in mine[0]]
    print(case, {k: round(statistics.median(r[k] for r in mine), 4) for k in keys},
          "over", len(mine), "rounds")
PY
