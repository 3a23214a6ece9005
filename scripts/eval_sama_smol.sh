#!/usr/bin/env bash
# Scores a sama-smol checkpoint on the held-out synthetic bench split: SAMA-Bench-G (mIoU, recall, captions),
# referring VOS ("Please segment X.", J&F) and exact attribute/motion answers. Two shards run side by side.
#   scripts/eval_sama_smol.sh [CHECKPOINT=sama/assets/sama-smol] [OUT=outputs/eval/sama-smol]
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1
MODEL=${1:-sama/assets/sama-smol}
OUT=${2:-outputs/eval/sama-smol}
DATA=outputs/data/synthetic-smol
S=.venv/bin/sama
mkdir -p "$OUT"
for i in 0 1; do
  ( $S evaluate sama-bench-g --data $DATA --pred "$OUT/bench_g.jsonl" --out "$OUT/g" --model "$MODEL" --shard $i/2 \
      --max-new-tokens 48 --no-progress && \
    $S evaluate mevis --data $DATA/rvos/bench --pred "$OUT/rvos.jsonl" --out "$OUT/rvos" --model "$MODEL" --shard $i/2 \
      --max-new-tokens 24 --no-progress ) > "$OUT/shard$i.log" 2>&1 &
done
wait
$S evaluate merge "$OUT"/bench_g.shard-*-of-2.jsonl --out "$OUT/bench_g.jsonl"
$S evaluate merge "$OUT"/rvos.shard-*-of-2.jsonl --out "$OUT/rvos.jsonl"
$S evaluate sama-bench-g --data $DATA --pred "$OUT/bench_g.jsonl" --out "$OUT/g" --recall-mode fixed --no-progress
$S evaluate mevis --data $DATA/rvos/bench --pred "$OUT/rvos.jsonl" --out "$OUT/rvos" --no-progress
$S evaluate facts --data $DATA --pred "$OUT/bench_g.jsonl" --out "$OUT/facts"
.venv/bin/python scripts/rvos_by_kind.py "$OUT/rvos" $DATA/rvos/bench | tee "$OUT/rvos_by_kind.txt"
