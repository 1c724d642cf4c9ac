#!/usr/bin/env bash
# The CIFAR-10 checks and timings that need a GPU, in one call of at most 10 minutes.
# Prepare on the CPU machine (wheels into .whl/, CIFAR-10 into .gpu-data/):
#   ../shared/gpu/prepare.sh cifar
# then on the GPU machine, from the project root (the device tool: carry [".whl", ".gpu-data"]):
#   OUT=${OUT:-/tmp/gpu_out} bash scripts/gpu_cifar.sh
# Writes gpu_cifar.log and each run's summary.json and metrics.jsonl under $OUT, in priority order:
#   1. the CUDA-marked tests            4. training images/s of each model (bench_cifar.py)
#   2. cifar_fast, 10 epochs, 3 seeds   5. the study's ResNet-18 recipe (100 epochs) in what time is left
#   3. airbench94 on the same card, 3 runs (scripts/airbench_compare.py)
set -uo pipefail
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
BUDGET=${BUDGET:-570}  # seconds for everything; the recipe run gets what the others leave
began=$(date +%s)
left() { echo $(( BUDGET - ($(date +%s) - began) )); }
exec > >(tee -a "$OUT/gpu_cifar.log") 2>&1
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD
fi
export DLFP_DATA=${DLFP_DATA:-$PWD/.gpu-data}
date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"

echo "== 1. CUDA-marked tests"
timeout 120 python3 -m pytest -q -m cuda tests -p no:cacheprovider 2>&1 | tail -5

echo "== 2. cifar_fast (hardware=cuda: bf16, channels_last, no compile), 10 epochs, 3 seeds"
timeout $(( $(left) - 300 )) python3 scripts/bench_cifar_fast.py --device cuda --epochs 10 --seeds 0 1 2 \
  --out "$OUT/cifar_fast" hardware.compile=false

echo "== 3. airbench94 on the same card"
timeout $(( $(left) - 200 )) python3 scripts/airbench_compare.py --runs 3

echo "== 4. training images/s per model, loader vs pre-made tensors"
timeout $(( $(left) - 120 )) python3 scripts/bench_cifar.py --device cuda --models fastnet allcnn_t resnet18 resnet34 resnet50 \
  --steps 20 --rounds 3

echo "== 5. the study's ResNet-18 recipe (100 epochs) for the $(left) s left; resumable with resume=true"
timeout $(( $(left) )) python3 -m dlfp.train experiment=cifar_resnet18 hardware=cuda dataset.download=false \
  hydra.run.dir="$OUT/cifar_resnet18" | tail -3
tail -2 "$OUT/cifar_resnet18/metrics.jsonl" 2>/dev/null
# keep the records, not the checkpoints (the device tool returns only small files)
find "$OUT" -name '*.pt' -delete
echo "done in $(( $(date +%s) - began )) s"
