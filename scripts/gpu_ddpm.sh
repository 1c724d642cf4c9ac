#!/usr/bin/env bash
# The DDPM's GPU row, in one call of at most 10 minutes (never run yet: no GPU was lent).
# Prepare on the CPU machine (wheels into .whl/, MNIST into .gpu-data/MNIST/raw):
#   ../shared/gpu/prepare.sh mnist
# then on the GPU machine, from the project root (the device tool: carry [".whl", ".gpu-data"]):
#   OUT=${OUT:-/tmp/gpu_out} bash scripts/gpu_ddpm.sh
# Writes gpu_ddpm.log and the runs under $OUT:
#   1. the quality classifier on full MNIST (experiment=mnist_cnn)
#   2. a longer DDPM on full MNIST (widths 32, 64, 64, attention at 7x7, 15,000 updates), its quality
#      table with 10,000 samples per row (DDPM with T = 1000 steps, DDIM 100/50/20/10) and samples/s
set -uo pipefail
source scripts/gpu_setup.sh gpu_ddpm
train() {  # $1: seconds; the rest: overrides
  local limit=$1; shift
  timeout "$limit" python3 -m dlfp.train hardware=cuda dataset.download=false "$@" 2>&1 | grep -v "INFO\] - step "
}

echo "== 1. the quality classifier"
train 120 experiment=mnist_cnn dataset=mnist hydra.run.dir="$OUT/mnist_cnn"

echo "== 2. DDPM on full MNIST, then its quality table"
train 420 experiment=ddpm dataset=mnist model.widths=[32,64,64] model.attention=true \
  train.steps=15000 train.eval_every=2500 train.checkpoint_every=2500 ddpm.quality.classifier="$OUT/mnist_cnn" \
  ddpm.quality.samples=10000 ddpm.quality.batch_size=2500 hydra.run.dir="$OUT/ddpm"
cat "$OUT/ddpm/quality.md" 2>/dev/null
