#!/usr/bin/env bash
# The CIFAR-10 checks and timings that need a GPU, in one call of at most 10 minutes.
# Prepare on the CPU machine (wheels into .whl/, CIFAR-10 into .gpu-data/):
#   ../shared/gpu/prepare.sh cifar
# then on the GPU machine, from the project root (the device tool: carry [".whl", ".gpu-data"]):
#   OUT=${OUT:-/tmp/gpu_out} bash scripts/gpu_cifar.sh
# Writes gpu_cifar.log and each run's summary.json and metrics.jsonl under $OUT, in priority order:
#   1. the CUDA-marked tests
#   2. cifar_fast, 10 epochs, 3 seeds (scripts/bench_cifar_fast.py)
#   3. airbench94 on the same card, 3 runs (scripts/airbench_compare.py): the time ratio
#   4. training images/s of each model, loader vs pre-made tensors (scripts/bench_cifar.py)
#   5. cifar_fast with FGSM-RS adversarial training, and the attack analysis of it
#   6. the study's ResNet-18 recipe (100 epochs) in the time left, then the attack analysis of
#      its last checkpoint (a resumable run: resume=true continues it)
set -uo pipefail
BUDGET=${BUDGET:-560}  # seconds for everything; the recipe run gets what the others leave
began=$(date +%s)
left() { echo $(( BUDGET - ($(date +%s) - began) )); }
source scripts/gpu_setup.sh gpu_cifar
train() { python3 -m dlfp.train hardware=cuda dataset.download=false "$@" 2>&1 | grep -v "^\[.*INFO\] - step "; }

echo "== 1. CUDA-marked tests"
timeout 120 python3 -m pytest -q -m cuda tests -p no:cacheprovider 2>&1 | tail -5

echo "== 2. cifar_fast (bf16, channels_last, no compile), 10 epochs, 3 seeds"
timeout $(( $(left) - 360 )) python3 scripts/bench_cifar_fast.py --device cuda --epochs 10 --seeds 0 1 2 \
  --out "$OUT/cifar_fast" hardware.compile=false

echo "== 3. airbench94 on the same card"
timeout $(( $(left) - 300 )) python3 scripts/airbench_compare.py --runs 3

echo "== 4. training images/s per model, loader vs pre-made tensors"
timeout $(( $(left) - 240 )) python3 scripts/bench_cifar.py --device cuda \
  --models fastnet allcnn_t resnet18 resnet34 resnet50 --steps 20 --rounds 3

echo "== 5. cifar_fast with FGSM-RS training, then its attack analysis"
timeout $(( $(left) - 200 )) bash -c "$(declare -f train); train experiment=cifar_fast hardware.compile=false \
  train.adversarial=fgsm_rs hydra.run.dir=$OUT/cifar_fast_fgsm_rs"
timeout $(( $(left) - 150 )) bash -c "$(declare -f train); train experiment=cifar_adversarial \
  adversarial.checkpoint=$OUT/cifar_fast_fgsm_rs adversarial.n_images=2000 hydra.run.dir=$OUT/adv_fgsm_rs"

echo "== 6. the study's ResNet-18 recipe for the $(( $(left) - 60 )) s left, then its attack analysis"
timeout $(( $(left) - 60 )) bash -c "$(declare -f train); train experiment=cifar_resnet18 \
  hydra.run.dir=$OUT/cifar_resnet18"
tail -2 "$OUT/cifar_resnet18/metrics.jsonl" 2>/dev/null
timeout $(( $(left) )) bash -c "$(declare -f train); train experiment=cifar_adversarial \
  adversarial.checkpoint=$OUT/cifar_resnet18 adversarial.n_images=1000 hydra.run.dir=$OUT/adv_resnet18"
# keep the records, not the checkpoints (the device tool returns only small files)
find "$OUT" -name '*.pt' -delete
echo "done in $(( $(date +%s) - began )) s"
