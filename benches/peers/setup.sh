#!/usr/bin/env bash
# Creates the peers' virtual environments with pip (idempotent):
#   benches/.venv     PyTorch and TensorFlow (requirements.txt; torch's PyPI wheel brings its
#                     CUDA libraries, about 4 GB, though only its CPU kernels run here)
#   benches/.venv-mg  TensorFlow Model Garden (tf-models-official and the TensorFlow it pins)
# A failed install is reported and skipped: the harness then records that peer as unavailable.
set -uo pipefail
cd "$(dirname "$0")/.."

make_venv() {
  local dir=$1; shift
  if [ -x "$dir/bin/python" ] && "$dir/bin/python" -c "$CHECK" >/dev/null 2>&1; then
    echo "$dir: ready"
    return 0
  fi
  python3 -m venv "$dir" && "$dir/bin/pip" install -q --upgrade pip && "$dir/bin/pip" install -q "$@" \
    || echo "$dir: installation failed; its peers will be recorded as unavailable" >&2
}

CHECK="import torch, tensorflow" make_venv .venv -r peers/requirements.txt
CHECK="import official" make_venv .venv-mg tf-models-official
