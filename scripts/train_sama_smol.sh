#!/usr/bin/env bash
# Reproduces the shipped sama-smol weights: synthetic world -> SAMA training -> export (fp16).
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
BIN=.venv/bin
$BIN/sama data synth --out outputs/data/synthetic-smol --videos 400 --seed 0 --size 96 96 --frames 24 --quiet \
  || [ -f outputs/data/synthetic-smol/train.json ]
$BIN/sama train configs/sama-smol-synthetic.yaml
$BIN/python -c "
from sama.model.modeling import SamaModel
SamaModel.from_pretrained('outputs/train/sama-smol-synthetic/final').save_pretrained('sama/assets/sama-smol', dtype='fp16')"
echo "wrote sama/assets/sama-smol"
