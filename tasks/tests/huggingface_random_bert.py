"""Makes a random BERT with transformers for experiments/tests/huggingface.rs, writes it as a
PyTorch-format Hugging Face checkpoint, and prints the outputs transformers gives from that
file.

Usage: python huggingface_random_bert.py OUT_DIR CONFIG_JSON INPUTS_JSON

CONFIG_JSON holds BertConfig's fields; INPUTS_JSON `input_ids`, `token_type_ids`,
`attention_mask` (B x S) and `masked_positions` (B x P). The model is transformers'
FlaxBertForPreTraining from a fixed seed, every bias and LayerNorm parameter then moved off
its initial value (so a mapping that mixes them up shows). It is written to OUT_DIR as
config.json and model.safetensors under PyTorch's names and layout (Flax `kernel` (in, out)
becomes `weight` (out, in); `embedding` and LayerNorm `scale` become `weight`), with the
`format: pt` metadata; the outputs printed are those of the model transformers loads back from
OUT_DIR: `mlm_logits` at the masked positions (B*P x vocab), `nsp_logits` (B x 2) and
`sequence_output` (B x S x hidden). Written against transformers 4.57.1, flax 0.12.8,
jax 0.10.2 (the venv .ci/run makes).
"""

import json
import sys

import numpy as np
from flax.traverse_util import flatten_dict, unflatten_dict
from safetensors.numpy import save_file
from transformers import BertConfig, FlaxBertForPreTraining

LEAF_NAMES = {"kernel": "weight", "embedding": "weight", "scale": "weight", "bias": "bias"}


def pytorch_tensors(params):
    """The Flax parameters under PyTorch's names and layout."""
    tensors = {}
    for path, value in flatten_dict(params).items():
        value = np.asarray(value, dtype=np.float32)
        if path[-1] == "kernel":
            value = value.T
        name = ".".join(path[:-1] + (LEAF_NAMES[path[-1]],))
        tensors[name] = np.ascontiguousarray(value)
    return tensors


def perturbed(params, rng):
    """`params` with every bias and LayerNorm parameter moved off its initial value."""
    flat = flatten_dict(params)
    for path, value in flat.items():
        if path[-1] in ("bias", "scale"):
            flat[path] = np.asarray(value) + rng.normal(0.0, 0.1, np.shape(value)).astype(np.float32)
    return unflatten_dict(flat)


def main(out_dir, config_file, inputs_file):
    with open(config_file) as f:
        config = BertConfig(**json.load(f))
    model = FlaxBertForPreTraining(config, seed=7)
    params = perturbed(model.params, np.random.default_rng(7))
    config.save_pretrained(out_dir)
    save_file(pytorch_tensors(params), f"{out_dir}/model.safetensors", metadata={"format": "pt"})

    loaded = FlaxBertForPreTraining.from_pretrained(out_dir)
    with open(inputs_file) as f:
        inputs = json.load(f)
    arrays = {
        name: np.array(inputs[name], dtype=np.int32)
        for name in ["input_ids", "token_type_ids", "attention_mask"]
    }
    outputs = loaded(**arrays, output_hidden_states=True)
    logits = np.asarray(outputs.prediction_logits)
    positions = np.array(inputs["masked_positions"])
    gathered = [logits[b, p] for b in range(positions.shape[0]) for p in positions[b]]
    json.dump(
        {
            "mlm_logits": np.stack(gathered).tolist(),
            "nsp_logits": np.asarray(outputs.seq_relationship_logits).tolist(),
            "sequence_output": np.asarray(outputs.hidden_states[-1]).tolist(),
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
