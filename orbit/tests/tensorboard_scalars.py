"""Prints the scalars of a model_dir's split directories as TensorBoard's own reader returns them.

Usage: python tensorboard_scalars.py MODEL_DIR SPLIT [SPLIT ...]

Output: one JSON list of [split, step, tag, value], read with TensorBoard's EventAccumulator
(scalar summaries, and scalar tensors as TF2 writes them). Used by
experiments/tests/run_experiment.rs (written against tensorboard 2.21.0).
"""

import json
import os
import sys

from tensorboard.backend.event_processing import event_accumulator
from tensorboard.util import tensor_util


def scalars(directory):
    accumulator = event_accumulator.EventAccumulator(
        directory,
        size_guidance={event_accumulator.SCALARS: 0, event_accumulator.TENSORS: 0},
    )
    accumulator.Reload()
    tags = accumulator.Tags()
    for tag in tags.get("scalars", []):
        for event in accumulator.Scalars(tag):
            yield event.step, tag, float(event.value)
    for tag in tags.get("tensors", []):
        for event in accumulator.Tensors(tag):
            value = tensor_util.make_ndarray(event.tensor_proto)
            if value.size == 1:
                yield event.step, tag, float(value.item())


def main(model_dir, splits):
    found = []
    for split in splits:
        for step, tag, value in scalars(os.path.join(model_dir, split)):
            found.append([split, step, tag, value])
    json.dump(found, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
