#!/usr/bin/env bash
# The CPU training run and ablations of docs/training.md (2 CPU cores: about an hour).
#   bash benchmarks/train_ablations.sh            # renders the data sets first if missing
# Env: DATA (default out/synthetic), OUT (default out/train), DOCS (default docs/training),
#      PY (default .venv/bin/python), REAL (annotations.jsonl of real images, optional).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DATA=${DATA:-out/synthetic}
OUT=${OUT:-out/train}
DOCS=${DOCS:-docs/training}
SHORT=500  # steps of every ablation run (the main run's checkpoint at 500 is their baseline)
CONFIG=config/train_synthetic.yaml
# train OUT_DIR [--set ...]: skipped when OUT_DIR already holds a finished run
train() {
  local out=$1
  shift
  [ -f "$out/checkpoint_final.pt" ] && { echo "skip $out (done)"; return; }
  "$PY" -m hand_mesh_ros.cli train --config "$CONFIG" --set "data_root=$DATA/train" --out "$out" "$@"
}

[ -f "$DATA/train/annotations.json" ] ||
  "$PY" benchmarks/make_synthetic_set.py --out "$DATA/train" --count 4000 --seed 1000
[ -f "$DATA/test/annotations.json" ] ||
  "$PY" benchmarks/make_synthetic_set.py --out "$DATA/test" --count 500 --seed 2024

# main: 200 steps stage 1 + 700 steps stage 2, self-data augmentation from step 300
train "$OUT/main"
# ablations at SHORT steps (200 + 300; the same step count without stage 1 for no_2d_losses)
train "$OUT/no_self_augment" --set stage2_steps=$((SHORT - 200)) --set self_augment=false
train "$OUT/constant_shape_weight" --set stage2_steps=$((SHORT - 200)) \
  --set shape_schedule=constant
train "$OUT/no_2d_losses" --set stage2_steps=$SHORT --set use_2d_losses=false

"$PY" benchmarks/eval_training.py --runs "$OUT" --test "$DATA/test" --out "$DOCS" \
  --short-step $SHORT ${REAL:+--real "$REAL"}
# test-set sampling noise of the ablation differences (paired bootstrap over test hands)
"$PY" benchmarks/eval_ablation_noise.py --test "$DATA/test" "$OUT/main/checkpoint_0000500.pt" \
  "$OUT/no_self_augment/checkpoint_final.pt" "$OUT/constant_shape_weight/checkpoint_final.pt" \
  "$OUT/no_2d_losses/checkpoint_final.pt" "$OUT/main/checkpoint_final.pt"
