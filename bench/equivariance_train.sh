#!/usr/bin/env bash
# Trains the members measured by bench/equivariance_models.py (issue 14 item 6): HEAL-SWIN tiny and
# S2CNN tiny at nside 16, seeds 0..N-1, without (aug=flip) and with (aug=rot90) quarter-turn augmentation.
# Usage: bench/equivariance_train.sh DATA_ROOT OUT_DIR [N] [FIRST_SEED]   (nice -n 10; ~3-4 min a run on 2 busy cores)
set -euo pipefail
data=${1:?data root}; out=${2:?output folder}; n=${3:-4}; first=${4:-0}
common=(--no-eval "data.root=$data" data.nside=16 data.limit_train=240 data.limit_val=32 data.num_workers=0
        trainer.max_epochs=3 "trainer.out_dir=$out" trainer.progress_bar=false)
for seed in $(seq "$first" $((first + n - 1))); do
  for aug in flip rot90; do
    rot=false; [ "$aug" = rot90 ] && rot=true
    heal-swin train --config train/quickstart.yaml "${common[@]}" "data.rot90=$rot" "trainer.seed=$seed" \
      "trainer.name=heal_swin_${aug}_s$seed" > "$out/heal_swin_${aug}_s$seed.log" 2>&1
    heal-swin train --config train/synthetic_s2cnn.yaml "${common[@]}" "data.rot90=$rot" "trainer.seed=$seed" \
      "trainer.name=s2cnn_${aug}_s$seed" > "$out/s2cnn_${aug}_s$seed.log" 2>&1
  done
done
