"""Tokenizes sentence cases with Hugging Face's BERT tokenizers, for
experiments/tests/huggingface.rs: the Python `BertTokenizer` (whose `longest_first` pair
truncation drops one token at a time from the longer sequence, the second on ties: BERT's
`_truncate_seq_pair`) and `BertTokenizerFast` (the tokenizers library's `LongestFirst`).

Usage: python huggingface_tokens.py VOCAB_FILE CASES_JSON

CASES_JSON is a list of {"a", "b" (or null), "seq_length"}. Prints one JSON object with
`slow` and `fast`: per case, `input_ids` and `token_type_ids` padded to `seq_length`.
Written against transformers 4.57.1 (the venv .ci/run makes).
"""

import json
import sys

from transformers import BertTokenizer, BertTokenizerFast


def encode(tokenizer, case):
    encoded = tokenizer(
        case["a"],
        case["b"],
        truncation="longest_first",
        max_length=case["seq_length"],
        padding="max_length",
    )
    return {"input_ids": encoded["input_ids"], "token_type_ids": encoded["token_type_ids"]}


def main(vocab_file, cases_file):
    with open(cases_file) as f:
        cases = json.load(f)
    slow = BertTokenizer(vocab_file, do_lower_case=True)
    fast = BertTokenizerFast(vocab_file=vocab_file, do_lower_case=True)
    json.dump(
        {
            "slow": [encode(slow, case) for case in cases],
            "fast": [encode(fast, case) for case in cases],
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
