# Sourced by the scripts/gpu_*.sh scripts: log to $OUT/<name>.log, install the bundled wheels
# (.whl/, made by ../shared/gpu/prepare.sh) and point DLFP_DATA at .gpu-data/. Usage:
#   source scripts/gpu_setup.sh <name>
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
exec > >(tee -a "$OUT/$1.log") 2>&1
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD
fi
export DLFP_DATA=${DLFP_DATA:-$PWD/.gpu-data}
date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
