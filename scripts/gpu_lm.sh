#!/usr/bin/env bash
# The language model's GPU rows, in one call of at most 10 minutes (never run yet: no GPU was lent).
# Prepare on the CPU machine (wheels into .whl/, shakespeare.txt into .gpu-data/text/):
#   ../shared/gpu/prepare.sh text
# then on the GPU machine, from the project root (the device tool: carry [".whl", ".gpu-data"]):
#   OUT=${OUT:-/tmp/gpu_out} bash scripts/gpu_lm.sh
# Writes gpu_lm.log and the runs under $OUT:
#   1. lm_bench as shipped on the GPU (same steps as the CPU recipe): tokens/s and bits per character
#   2. a larger model in the same 5 minutes of training: d 384, 6 blocks, context 256, batch 64, bf16
#   3. the study's experiment=lm (bpe_study, padded paragraphs) on shakespeare.txt, 2,000 updates
set -uo pipefail
source scripts/gpu_setup.sh gpu_lm

echo "== 1. lm_bench as shipped, on the GPU"
timeout 120 python3 scripts/bench_lm.py --device cuda --out "$OUT/lm" --config as_shipped "hardware.amp_dtype=bfloat16"

echo "== 2. a larger model, 5 minutes of training"
timeout 400 python3 scripts/bench_lm.py --device cuda --out "$OUT/lm" --config gpu_large \
  "model.d_model=384 model.heads=6 model.layers=6 model.context=256 train.batch_size=64 train.steps=6000 optimizer.lr=1e-3 schedule.warmup_steps=200 hardware.amp_dtype=bfloat16 train.eval_every=1000 lm.eval_tokens=65536"

echo "== 3. the study's experiment=lm on shakespeare.txt"
timeout 60 python3 -m dlfp.train experiment=lm hardware=cuda corpus=shakespeare train.steps=2000 \
  hydra.run.dir="$OUT/lm/study" 2>&1 | grep -v "INFO\] - step "
cat "$OUT/lm/study/samples.txt" 2>/dev/null
