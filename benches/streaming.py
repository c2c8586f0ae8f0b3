#!/usr/bin/env python3
"""Streaming-input benchmarks (issue 27): peak RSS of the same training run on a small and a
large Model Garden-format pretraining TFRecord set, input_wait_fraction during training,
input throughput alone, and the time to the first step after a resume.

Build first (grove-benches with grove-experiments, so `train` logs its first-step time):
    cargo build --release -p grove-benches -p grove-experiments
Then, from the repository root:
    python3 benches/streaming.py --rounds 3
It writes the data sets under --data-dir (about 4 GB; not committed) and prints a Markdown
table of medians (min-max) for benches/RESULTS.md.
"""

import argparse
import glob
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release")


def run_json(args):
    out = subprocess.run([os.path.join(BIN, "grove-bench")] + args, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def ensure_set(directory, megabytes, shards):
    if len(glob.glob(os.path.join(directory, "*.tfrecord"))) == shards:
        return
    shutil.rmtree(directory, ignore_errors=True)
    print(run_json(["pretraining-data", "--dir", directory, "--shards", str(shards),
                    "--megabytes", str(megabytes)]))


def overrides(pattern, steps, checkpoint_interval):
    """bert/local at BERT-mini's input shapes (seq 128, 20 predictions, batch 16) reading the
    TFRecord set, with a 1000-record shuffle buffer."""
    return [
        "task.model.encoder.bert.vocab_size=8192",
        "task.model.encoder.bert.max_position_embeddings=128",
        "task.train_data={input_path: '%s', file_type: tfrecord, seq_length: 128, "
        "max_predictions_per_seq: 20, global_batch_size: 16, shuffle_buffer_size: 1000}" % pattern,
        "trainer.train_steps=%d" % steps,
        "trainer.checkpoint_interval=%d" % checkpoint_interval,
        "trainer.steps_per_loop=50",
        "trainer.summary_interval=50",
    ]


def train(model_dir, sets):
    """Runs `train`; its peak RSS (MB, from wait4), wall seconds, first-step seconds, log."""
    args = [os.path.join(BIN, "train"), "--experiment=bert/local", "--mode=train",
            "--model_dir=%s" % model_dir] + ["--params_override=%s" % s for s in sets]
    env = dict(os.environ, GROVE_LOG="info")
    started = time.monotonic()
    with tempfile.TemporaryFile("w+") as log:
        child = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.monotonic() - started
        log.seek(0)
        text = log.read()
    if status != 0:
        raise SystemExit("train failed:\n" + text[-3000:])
    first = re.search(r"first step done after ([0-9.]+) s", text)
    return usage.ru_maxrss / 1024.0, wall, float(first.group(1)) if first else None, text


def input_wait(model_dir):
    values = []
    for line in open(os.path.join(model_dir, "metrics.jsonl")):
        entry = json.loads(line)
        metrics = entry.get("metrics", entry)
        if entry.get("split") == "train" and "input_wait_fraction" in metrics:
            values.append(metrics["input_wait_fraction"])
    return values


def summary(values, fmt="%.1f"):
    return "%s (%s–%s)" % (fmt % statistics.median(values), fmt % min(values), fmt % max(values))


def cpu():
    flags = open("/proc/cpuinfo").read()
    model = re.search(r"model name\s*: (.*)", flags).group(1)
    family = re.search(r"cpu family\s*: (\d+)", flags).group(1)
    isa = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "SSE"
    return "%s (family %s, %s), %d cores" % (model, family, isa, os.cpu_count())


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", default="/tmp/grove-streaming")
    parser.add_argument("--small-mb", type=int, default=40)
    parser.add_argument("--large-mb", type=int, default=4096)
    parser.add_argument("--shards", type=int, default=64)
    parser.add_argument("--steps", type=int, default=200, help="a multiple of 100")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    sets = {"small": (args.small_mb, os.path.join(args.data_dir, "small")),
            "large": (args.large_mb, os.path.join(args.data_dir, "large"))}
    for megabytes, directory in sets.values():
        ensure_set(directory, megabytes, args.shards)

    rss = {name: [] for name in sets}
    waits = {name: [] for name in sets}
    resume_first = []
    for _ in range(args.rounds):
        for name, (_, directory) in sets.items():  # interleaved: small, large, small, ...
            pattern = os.path.join(directory, "*.tfrecord")
            with tempfile.TemporaryDirectory() as model_dir:
                peak, _, _, _ = train(model_dir, overrides(pattern, args.steps, args.steps // 2))
                rss[name].append(peak)
                waits[name].extend(input_wait(model_dir)[1:])  # the first loop fills the buffer
                if name == "large":
                    # The same command with more steps resumes from the last checkpoint.
                    _, _, first, text = train(model_dir, overrides(pattern, args.steps + 50, args.steps // 2))
                    assert "restored from checkpoint" in text, text[-2000:]
                    resume_first.append(first)

    large_pattern = os.path.join(sets["large"][1], "*.tfrecord")
    throughput = {}
    for threads in (0, 1, 2):
        throughput[threads] = [run_json(["input", "--input-path", large_pattern,
                                         "--input-threads", str(threads), "--batches", "1000",
                                         "--set", "task.train_data.shuffle_buffer_size=1000"]
                                        )["records_per_second"] for _ in range(args.rounds)]

    print("\nMachine: %s; %s; rounds: %d, interleaved\n" % (cpu(), platform.platform(), args.rounds))
    print("| measure | %d MB (%d shards) | %d MB (%d shards) |" % (
        args.small_mb, args.shards, args.large_mb, args.shards))
    print("|---|---|---|")
    print("| peak RSS of a %d-step run, MB | %s | %s |" % (args.steps, summary(rss["small"]),
                                                         summary(rss["large"])))
    print("| input_wait_fraction per train loop (after the first) | %s | %s |" % (
        summary(waits["small"], "%.5f"), summary(waits["large"], "%.5f")))
    print("| time to first step after resume, s | | %s |" % summary(resume_first, "%.3f"))
    for threads, values in throughput.items():
        print("| input alone, records/s, input_threads %d | | %s |" % (threads, summary(values, "%.0f")))


if __name__ == "__main__":
    main()
