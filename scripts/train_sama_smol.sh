#!/usr/bin/env bash
# Reproduces the shipped sama-smol weights: synthetic world -> SAM2 warm-up -> SAMA training -> export (fp16).
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
BIN=.venv/bin
$BIN/sama data synth --out outputs/data/synthetic-smol --videos 400 --seed 0 --size 96 96 --frames 24 --quiet \
  || [ -f outputs/data/synthetic-smol/train.json ]
$BIN/sama warmup-sam2 --preset sama-smol --data outputs/data/synthetic-smol --out outputs/train/sam2-warmup-smol \
  --steps 600 --threads 1
$BIN/sama train configs/sama-smol-synthetic.yaml
$BIN/python -c "
from sama.model.modeling import SamaModel
SamaModel.from_pretrained('outputs/train/sama-smol-synthetic/final').save_pretrained('sama/assets/sama-smol', dtype='fp16')"
echo "wrote sama/assets/sama-smol"
