"""What the Python peer runners share: the command line, the workload shapes, thread
settings, timing and the one-line JSON report (the format grove-bench prints)."""

import argparse
import json
import os
import resource
import sys
import time

# The workloads' shapes (benches/src/workloads.rs and reference/perf_anchors.md).
MLP = dict(batch=128, sizes=(784, 512, 512, 10))
BERT = dict(vocab=8192, hidden=256, layers=4, heads=4, ffn=1024, seq=128, batch=16,
            masked=19, types=2)
LEARNING_RATE = 1e-3
WEIGHT_DECAY = 0.01
EPSILON = 1e-6
INIT_STDDEV = 0.02
LN_EPSILON = 1e-12


def parse_args():
    """`<script> <workload> --warmup W --steps N --threads T`; threads go to the environment
    before any framework is imported."""
    parser = argparse.ArgumentParser()
    parser.add_argument("workload", choices=["mlp", "bert"])
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--xla", type=int, default=0, help="TensorFlow only: jit_compile")
    args = parser.parse_args()
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(args.threads)
    return args


def masked_rows():
    """The gathered rows of the flattened (batch*seq, hidden) output: `masked` distinct
    positions per sequence, as Grove's runner and the bare candle loop use them."""
    b = BERT
    stride = b["seq"] // b["masked"]
    return [s * b["seq"] + i * stride for s in range(b["batch"]) for i in range(b["masked"])]


def measure(step, warmup, steps):
    """Runs `step()` (returning the loss as a float) `warmup` times, then times `steps`
    calls; returns ms per step. Exits 1 if the last loss is not finite."""
    for _ in range(warmup):
        step()
    start = time.perf_counter()
    loss = float("nan")
    for _ in range(steps):
        loss = step()
    ms = (time.perf_counter() - start) * 1e3 / steps
    if loss != loss or loss in (float("inf"), float("-inf")):
        print(f"training loss is not finite: {loss}", file=sys.stderr)
        sys.exit(1)
    return ms


def report(runner, workload, ms, threads, versions):
    """Prints the one JSON line the harness reads."""
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(dict(runner=runner, workload=workload, ms_per_step=ms,
                          peak_rss_mb=peak_rss_mb, threads=threads, versions=versions)))
