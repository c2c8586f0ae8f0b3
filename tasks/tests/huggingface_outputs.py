"""Runs a Grove export (`--mode=export`, Hugging Face format) in Hugging Face transformers and
prints its outputs, for experiments/tests/huggingface.rs.

Usage: python huggingface_outputs.py EXPORT_DIR INPUTS_JSON

INPUTS_JSON holds `input_ids`, `token_type_ids`, `attention_mask` (B x S) and
`masked_positions` (B x P). The model class is the one config.json names, loaded with
transformers' Flax BERT (it reads PyTorch-format safetensors without torch). Prints one JSON
object: `mlm_logits` (the prediction logits at the masked positions, B*P x vocab),
`nsp_logits` (B x 2) or `logits` (sequence classification), and `loading_warnings` (what
transformers reported as missing or unused weights). Written against transformers 4.57.1,
flax 0.12.8, jax 0.10.2 (the venv .ci/run makes).
"""

import json
import logging
import sys

import numpy as np
import transformers
from transformers.utils import logging as hf_logging


class Collect(logging.Handler):
    """Keeps the messages about weights that were not loaded or not used."""

    def __init__(self):
        super().__init__(level=logging.WARNING)
        self.messages = []

    def emit(self, record):
        message = record.getMessage()
        if "not initialized" in message or "not used" in message or "missing" in message:
            self.messages.append(message)


def main(export_dir, inputs_file):
    collect = Collect()
    hf_logging.set_verbosity_warning()
    hf_logging.get_logger().addHandler(collect)
    with open(f"{export_dir}/config.json") as f:
        architecture = json.load(f)["architectures"][0]
    model = getattr(transformers, f"Flax{architecture}").from_pretrained(export_dir)
    with open(inputs_file) as f:
        inputs = json.load(f)
    arrays = {
        name: np.array(inputs[name], dtype=np.int32)
        for name in ["input_ids", "token_type_ids", "attention_mask"]
    }
    outputs = model(**arrays)
    result = {"loading_warnings": collect.messages}
    if architecture == "BertForSequenceClassification":
        result["logits"] = np.asarray(outputs.logits).tolist()
    else:
        logits = np.asarray(outputs.prediction_logits)
        positions = np.array(inputs["masked_positions"])
        gathered = [logits[b, p] for b in range(positions.shape[0]) for p in positions[b]]
        result["mlm_logits"] = np.stack(gathered).tolist()
        if architecture == "BertForPreTraining":
            result["nsp_logits"] = np.asarray(outputs.seq_relationship_logits).tolist()
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
