#!/usr/bin/env python3
"""Regenerates benches/RESULTS.md: Grove against a bare candle loop, PyTorch eager and
TensorFlow (tf.function with and without XLA) on the MLP and BERT-mini steps, interleaved
(A B C A B C ...) in fresh processes; Grove's Controller overhead; tiny-BERT end to end
against Model Garden; checkpoint throughput against dd; peak RSS of each.

    benches/peers/setup.sh && cargo build --release -p grove-benches -p grove-experiments \\
        && python3 benches/harness.py            # about 25 minutes on 2 cores

Everything below the log marker of an existing RESULTS.md is kept (the optimisation log).
A runner that cannot start (a peer not installed, a binary not built) is recorded as
unavailable with its reason.
"""

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCHES = Path(__file__).resolve().parent
ROOT = BENCHES.parent
RESULTS = BENCHES / "RESULTS.md"
LOG_MARKER = "<!-- log: hand-written below, kept by harness.py -->"
GROVE_BENCH = ROOT / "target/release/grove-bench"
TRAIN = ROOT / "target/release/train"
VENV = BENCHES / ".venv/bin/python"
VENV_MG = BENCHES / ".venv-mg/bin/python"
PEERS = BENCHES / "peers"

# (warm-up steps, timed steps) per workload, per quick/full run.
STEPS = {"mlp": ((20, 100), (3, 10)), "bert": ((3, 5), (1, 2))}


def step_runners(workload, warmup, steps, threads):
    """Name and command of every runner of a step workload."""
    common = ["--warmup", str(warmup), "--steps", str(steps), "--threads", str(threads)]
    grove = [str(GROVE_BENCH), workload]
    py = lambda script, *extra: [str(VENV), str(PEERS / script), workload, *extra, *common]  # noqa
    return [
        ("grove", grove + ["--runner", "grove"] + common),
        ("grove_task", grove + ["--runner", "task"] + common),
        ("candle", grove + ["--runner", "candle"] + common),
        ("torch", py("torch_bench.py")),
        ("tf", py("tf_bench.py", "--xla", "0")),
        ("tf_xla", py("tf_bench.py", "--xla", "1")),
    ]


def relative(part):
    """A command part with the repository root left out, for the report."""
    return part.replace(f"{ROOT}/", "")


def thread_env(threads):
    env = dict(os.environ)
    for name in ("RAYON_NUM_THREADS", "CANDLE_NUM_THREADS", "OMP_NUM_THREADS",
                 "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[name] = str(threads)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def run_json(command, env, timeout=1800):
    """Runs `command`; returns (the last JSON line it printed, None) or (None, reason)."""
    if not Path(command[0]).exists():
        return None, f"unavailable: {command[0]} is missing (see benches/README.md)"
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout} s"
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return None, f"unavailable: exit {done.returncode}: {tail[:200]}"
    return json.loads(lines[-1]), None


def summary(values):
    return dict(median=statistics.median(values), low=min(values), high=max(values),
                runs=len(values))


def measure_steps(args):
    """Interleaved rounds of every runner of both workloads."""
    results = {}
    env = thread_env(args.threads)
    for workload in ("mlp", "bert"):
        warmup, steps = STEPS[workload][1 if args.quick else 0]
        runners = step_runners(workload, warmup, steps, args.threads)
        samples = {name: [] for name, _ in runners}
        rss = {name: [] for name, _ in runners}
        errors, extra = {}, {}
        for round_index in range(args.rounds):
            for name, command in runners:
                if name in errors:
                    continue
                report, error = run_json(command, env)
                if error:
                    errors[name] = error
                    continue
                samples[name].append(report["ms_per_step"])
                rss[name].append(report.get("peak_rss_mb", 0.0))
                extra.setdefault(name, []).append(report)
                print(f"{workload} round {round_index + 1} {name}: "
                      f"{report['ms_per_step']:.1f} ms", flush=True)
        results[workload] = dict(
            commands={name: " ".join(relative(part) for part in command)
                      for name, command in runners},
            steps=dict(warmup=warmup, timed=steps),
            runners={name: dict(**summary(values), rss=max(rss[name]),
                                versions=extra[name][-1].get("versions", {}),
                                phases=phases(extra[name]))
                     for name, values in samples.items() if values},
            errors=errors)
    return results


def phases(reports):
    """Median forward / backward / optimizer ms of the task runner's reports."""
    keys = ("input_ms", "forward_ms", "backward_ms", "optimizer_ms")
    if not all(k in reports[0] for k in keys):
        return None
    return {k: statistics.median(r[k] for r in reports) for k in keys}


# Tiny BERT end to end: Grove's bert/local with Model Garden's tiny config (model_garden/).
GROVE_E2E = [
    "task.model.encoder.bert.hidden_size=64", "task.model.encoder.bert.num_layers=2",
    "task.model.encoder.bert.num_attention_heads=2",
    "task.model.encoder.bert.intermediate_size=256", "task.model.encoder.bert.vocab_size=1024",
    "task.model.encoder.bert.initializer_range=0.02",
    "task.train_data.seq_length=64", "task.validation_data.seq_length=64",
    "task.train_data.max_predictions_per_seq=10", "task.validation_data.max_predictions_per_seq=10",
    "task.train_data.global_batch_size=16", "task.validation_data.global_batch_size=16",
    "trainer.train_steps=200", "trainer.validation_interval=100", "trainer.validation_steps=5",
    "trainer.steps_per_loop=100", "trainer.checkpoint_interval=100",
    "trainer.summary_interval=100",
]


def grove_e2e(threads):
    """One cold `train` process: (wall s, first step s) or an error string."""
    if not TRAIN.exists():
        return f"unavailable: {TRAIN} is missing"
    with tempfile.TemporaryDirectory() as model_dir:
        command = [str(TRAIN), "--experiment=bert/local", "--mode=train_and_eval",
                   f"--model_dir={model_dir}/run", *GROVE_E2E]
        start = time.perf_counter()
        done = subprocess.run(command, env=thread_env(threads), capture_output=True, text=True)
        wall = time.perf_counter() - start
    if done.returncode != 0:
        return f"failed: {done.stderr.strip()[-300:]}"
    first = re.search(r"first step done after (\S+) s", done.stderr)
    return wall, float(first.group(1)) if first else None


def model_garden_e2e(threads):
    """One cold `official.nlp.train` process: (wall s, s to its first train log) or error."""
    if not VENV_MG.exists():
        return "unavailable: benches/.venv-mg is missing (benches/peers/setup.sh)"
    with tempfile.TemporaryDirectory() as model_dir:
        command = [str(VENV_MG), "-m", "official.nlp.train", "--experiment=bert/pretraining",
                   "--mode=train_and_eval", f"--model_dir={model_dir}",
                   f"--config_file={BENCHES / 'model_garden/tiny_bert.yaml'}"]
        env = thread_env(threads)
        env["CUDA_VISIBLE_DEVICES"] = ""
        start = time.perf_counter()
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True)
        first = None
        output = []
        for line in process.stdout:
            output.append(line)
            if first is None and re.search(r"train \| step:", line):
                first = time.perf_counter() - start
        process.wait()
        wall = time.perf_counter() - start
    if process.returncode != 0:
        return f"failed: {''.join(output)[-300:]}"
    return wall, first


def measure_e2e(args):
    grove, garden = [], []
    errors = {}
    rounds = 1 if args.quick else args.e2e_rounds
    for _ in range(rounds):
        for name, run, store in (("grove", grove_e2e, grove),
                                 ("model_garden", model_garden_e2e, garden)):
            if name in errors:
                continue
            result = run(args.threads)
            if isinstance(result, str):
                errors[name] = result
            else:
                store.append(result)
                print(f"e2e {name}: {result}", flush=True)
    return dict(grove=grove, model_garden=garden, errors=errors,
                grove_command="target/release/train --experiment=bert/local "
                              "--mode=train_and_eval --model_dir=... " + " ".join(GROVE_E2E))


def measure_checkpoint(args):
    """Grove's save/restore against dd writing the same bytes with fsync, interleaved."""
    directory = Path(args.checkpoint_dir)
    grove, dd, errors = [], [], {}
    for _ in range(1 if args.quick else args.rounds):
        report, error = run_json([str(GROVE_BENCH), "checkpoint", "--dir", str(directory),
                                  "--rounds", "3"], thread_env(args.threads))
        if error:
            errors["grove"] = error
            break
        grove.append(report)
        megabytes = max(1, round(report["bytes"] / 1e6))
        target = directory / "grove-dd.bin"
        start = time.perf_counter()
        subprocess.run(["dd", "if=/dev/zero", f"of={target}", "bs=1M", f"count={megabytes}",
                        "conv=fsync"], capture_output=True, check=True)
        dd.append(megabytes * 1.048576 / (time.perf_counter() - start))
        target.unlink()
    return dict(grove=grove, dd=dd, errors=errors)


def measure_overhead(args):
    """The Controller's overhead in three processes (one with --quick). The run with the median
    share is reported, with every run's share beside it: one stall of this VM can add a
    quarter of a second to one run."""
    reports, errors = [], []
    for _ in range(1 if args.quick else 3):
        report, error = run_json([str(GROVE_BENCH), "overhead", "--steps",
                                  "100" if args.quick else "400"], thread_env(args.threads))
        if report:
            reports.append(report)
        else:
            errors.append(error)
    if not reports:
        return dict(report=None, error=errors[0])
    reports.sort(key=lambda r: r["overhead_pct"])
    median = reports[len(reports) // 2]
    median["overhead_pct_runs"] = [r["overhead_pct"] for r in reports]
    return dict(report=median, error=None)


def versions():
    found = {"rustc": subprocess.run(["rustc", "--version"], capture_output=True,
                                     text=True).stdout.strip()}
    try:
        found["grove commit"] = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short",
                                                "HEAD"], capture_output=True,
                                               text=True).stdout.strip()
    except OSError:
        pass
    found.update(pip_versions(VENV, r"torch|tensorflow-cpu|tensorflow_cpu|keras|numpy", ""))
    found.update(pip_versions(VENV_MG, r"tf-models-official|tf_models_official|tensorflow",
                              " (Model Garden venv)"))
    return found


def pip_versions(python, packages, label):
    """`{package + label: version}` for the packages (a regex alternation) installed in the
    virtual environment of `python`; empty if it does not exist."""
    if not python.exists():
        return {}
    freeze = subprocess.run([str(python), "-m", "pip", "freeze"], capture_output=True,
                            text=True).stdout
    found = {}
    for line in freeze.splitlines():
        if re.match(rf"({packages})==", line):
            name, version = line.split("==")
            found[f"{name}{label}"] = version
    return found


def machine():
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = re.search(r"model name\s*:\s*(.*)", cpuinfo)
    memory = re.search(r"MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text())
    # The VMs all call themselves "AMD EPYC" or "Intel Xeon"; family and model tell the
    # generation (AMD family 25 is Zen 3/4, 26 is Zen 5), which sets the product rate per core.
    ids = [re.search(rf"^{key}\s*:\s*(\S+)", cpuinfo, re.M) for key in ("cpu family", "model")]
    return dict(cpu=model.group(1) if model else platform.processor(),
                cpu_family_model="/".join(i.group(1) for i in ids) if all(ids) else None,
                cores=os.cpu_count(), avx512="avx512f" in cpuinfo,
                memory_gib=round(int(memory.group(1)) / 2**20, 1) if memory else None,
                kernel=platform.release())


def target_line(label, value, target, met):
    state = "met" if met else "not met"
    return f"| {label} | {value} | {target} | **{state}** |"


def ratio(runners, a, b):
    if a in runners and b in runners:
        return runners[a]["median"] / runners[b]["median"]
    return None


def render(data, args):
    lines = ["# Benchmark results", "",
             f"Generated by `python3 benches/harness.py{' --quick' if args.quick else ''}` on "
             f"{data['date']} (UTC). Interleaved: every round runs each runner once in a fresh "
             f"process (A B C … A B C …); figures are medians over the rounds with min–max. "
             f"Threads: {args.threads} for every framework. Sections measured at: "
             + ", ".join(f"{k} {v}" for k, v in data.get("measured", {}).items()) + ".", "",
             "## Machine and versions", ""]
    for key, value in {**data["machine"], **data["versions"]}.items():
        lines.append(f"- {key}: {value}")
    lines += ["", "## Targets", "", "| target | measured | goal | state |", "|---|---|---|---|"]
    steps = data.get("steps", {})
    bert, mlp = steps.get("bert", {}).get("runners", {}), steps.get("mlp", {}).get("runners", {})
    for label, workload_runners, peer, goal in (
            ("BERT-mini step, Grove / PyTorch eager", bert, "torch", 0.9),
            ("BERT-mini step, Grove / TF XLA", bert, "tf_xla", 1.0),
            ("MLP step, Grove / PyTorch eager", mlp, "torch", 1.0)):
        r = ratio(workload_runners, "grove", peer)
        if r is not None:
            lines.append(target_line(label, f"{r:.2f}×", f"≤ {goal}×", r <= goal))
    if "grove" in bert and "torch" in bert:
        r = bert["grove"]["rss"] / bert["torch"]["rss"]
        lines.append(target_line("BERT-mini peak RSS, Grove / PyTorch", f"{r:.2f}×", "≤ 0.25×",
                                 r <= 0.25))
    overhead = data.get("overhead", {}).get("report")
    if overhead:
        pct = overhead["overhead_pct"]
        lines.append(target_line("Controller overhead (bert/local, no checkpoints)",
                                 f"{pct:.2f} %", "≤ 1 %", pct <= 1.0))
    e2e = data.get("e2e", {})
    if e2e.get("grove"):
        grove_wall = statistics.median(w for w, _ in e2e["grove"])
        firsts = [f for _, f in e2e["grove"] if f is not None]
        if e2e.get("model_garden"):
            mg_wall = statistics.median(w for w, _ in e2e["model_garden"])
            r = mg_wall / grove_wall
            lines.append(target_line("tiny BERT end to end, Model Garden / Grove wall time",
                                     f"{r:.1f}×", "≥ 15×", r >= 15))
        if firsts:
            first = statistics.median(firsts)
            lines.append(target_line("Grove time to first step", f"{first:.3f} s", "≤ 0.3 s",
                                     first <= 0.3))
    checkpoint = data.get("checkpoint", {})
    if checkpoint.get("grove") and checkpoint.get("dd"):
        save = statistics.median(r["save_mb_per_s"] for r in checkpoint["grove"])
        dd = statistics.median(checkpoint["dd"])
        lines.append(target_line("checkpoint save, Grove / dd (fsync)", f"{save / dd:.2f}×",
                                 "≥ 0.8×", save / dd >= 0.8))
        first = statistics.median(r["first_save_mb_per_s"] for r in checkpoint["grove"])
        lines.append(target_line("first checkpoint save of a process, Grove / dd",
                                 f"{first / dd:.2f}×", "≥ 0.8×", first / dd >= 0.8))
    for workload, result in steps.items():
        lines += ["", f"## {workload} step ({result['steps']['warmup']} warm-up, "
                      f"{result['steps']['timed']} timed steps per process)", "",
                  "| runner | ms/step median | min–max | runs | vs torch | vs tf_xla | "
                  "peak RSS MB | fwd / bwd / opt ms |", "|---|---|---|---|---|---|---|---|"]
        runners = result["runners"]
        for name, r in runners.items():
            vs = [ratio(runners, name, peer) for peer in ("torch", "tf_xla")]
            vs = [f"{v:.2f}×" if v is not None else "–" for v in vs]
            p = r.get("phases")
            split = (f"{p['forward_ms']:.0f} / {p['backward_ms']:.0f} / {p['optimizer_ms']:.1f}"
                     if p else "–")
            lines.append(f"| {name} | {r['median']:.1f} | {r['low']:.1f}–{r['high']:.1f} | "
                         f"{r['runs']} | {vs[0]} | {vs[1]} | {r['rss']:.0f} | {split} |")
        for name, error in result["errors"].items():
            lines.append(f"| {name} | {error} | | | | | | |")
        lines += ["", "Commands:", ""] + [f"- {n}: `{c}`" for n, c in result["commands"].items()]
    if overhead:
        lines += ["", "## Controller overhead", "",
                  f"bert/local, {overhead['steps']} steps under the Orbit Controller (20-step "
                  "loops, summaries every loop); time outside the trainer's `train` calls: "
                  f"**{overhead['overhead_pct']:.2f} %** of {overhead['seconds']:.2f} s; with "
                  f"bert/local's checkpoints every 100 steps: "
                  f"{overhead['overhead_with_checkpoints_pct']:.2f} % of "
                  f"{overhead['seconds_with_checkpoints']:.2f} s (the median of "
                  f"{len(overhead.get('overhead_pct_runs', [0]))} processes by the first share; "
                  "each process's share without checkpoints: "
                  + ", ".join(f"{p:.2f} %" for p in overhead.get("overhead_pct_runs",
                                                             [overhead["overhead_pct"]]))
                  + "). Command: `target/release/grove-bench overhead`."]
    elif data.get("overhead", {}).get("error"):
        lines += ["", "## Controller overhead", "", data["overhead"]["error"]]
    if e2e:
        lines += ["", "## Tiny BERT end to end (200 steps, train_and_eval)", "",
                  "| run | wall s (each) | first step s (each) |", "|---|---|---|"]
        for name in ("grove", "model_garden"):
            runs = e2e.get(name, [])
            if runs:
                walls = ", ".join(f"{w:.2f}" for w, _ in runs)
                firsts = ", ".join(f"{f:.3f}" if f is not None else "n/a" for _, f in runs)
                lines.append(f"| {name} | {walls} | {firsts} |")
        for name, error in e2e.get("errors", {}).items():
            lines.append(f"| {name} | {error} | |")
        lines += ["", "Grove's first step is the `first step done after … s` log line (from the "
                      "start of `main`); Model Garden's is the time from process start to its "
                      "first `train | step:` line, which comes after its first 100-step loop "
                      "(an upper bound).", "", f"Grove: `{e2e['grove_command']}`", "",
                  "Model Garden: `benches/.venv-mg/bin/python -m official.nlp.train "
                  "--experiment=bert/pretraining --mode=train_and_eval --model_dir=... "
                  "--config_file=benches/model_garden/tiny_bert.yaml`"]
    if checkpoint:
        lines += ["", "## Checkpoint throughput", ""]
        if checkpoint.get("grove"):
            grove = checkpoint["grove"]
            med = lambda key: statistics.median(r[key] for r in grove)  # noqa: E731
            mb = grove[0]["bytes"] / 1e6
            lines.append(f"{mb:.0f} MB (model and AdamW slots, BERT of 38M parameters) in "
                         f"`{args.checkpoint_dir}`, {len(grove)} processes of 3 save/restore "
                         f"rounds each: save with fsync median {med('save_mb_per_s'):.0f} MB/s "
                         f"(first save of a process {med('first_save_mb_per_s'):.0f} MB/s), "
                         f"restore {med('restore_mb_per_s'):.0f} MB/s (first "
                         f"{med('first_restore_mb_per_s'):.0f} MB/s); "
                         f"`dd if=/dev/zero bs=1M conv=fsync` of the same size "
                         f"{statistics.median(checkpoint['dd']):.0f} MB/s.")
        for name, error in checkpoint.get("errors", {}).items():
            lines.append(f"{name}: {error}")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--e2e-rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--checkpoint-dir", default=tempfile.gettempdir())
    parser.add_argument("--quick", action="store_true", help="1 round, few steps (smoke run)")
    for section in ("steps", "overhead", "e2e", "checkpoint"):
        parser.add_argument(f"--no-{section}", action="store_true",
                            help=f"skip {section}; RESULTS.md keeps its last {section} figures")
    args = parser.parse_args()
    if args.quick:
        args.rounds = 1
    data = dict(date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"),
                machine=machine(), versions=versions())
    previous = {}
    if (BENCHES / "results.json").exists():
        previous = json.loads((BENCHES / "results.json").read_text())
    data["measured"] = dict(previous.get("measured", {}))
    for section, measure in (("steps", measure_steps), ("overhead", measure_overhead),
                             ("e2e", measure_e2e), ("checkpoint", measure_checkpoint)):
        if not getattr(args, f"no_{section}"):
            data[section] = measure(args)
            data["measured"][section] = data["date"]
        elif section in previous:
            # A skipped section keeps its last measurement (and says when it was taken).
            data[section] = previous[section]
    log = ""
    if RESULTS.exists() and LOG_MARKER in RESULTS.read_text():
        log = RESULTS.read_text().split(LOG_MARKER, 1)[1]
    RESULTS.write_text(render(data, args) + "\n" + LOG_MARKER + log)
    (BENCHES / "results.json").write_text(json.dumps(data, indent=1))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    sys.exit(main())
