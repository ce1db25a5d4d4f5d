#!/usr/bin/env bash
# One prepared GPU benchmark run for BENCHMARKS.md: the GPU numbers of issue 16 in about 6-9 minutes on one H100.
# Needs torch + timm (no nbdev/fastcore, no network, no install: the checkout is put on PYTHONPATH).
#   bash bench/gpu.sh              # on the GPU machine, from the repository root; everything goes to stdout
#   bash bench/gpu.sh --dry-run    # the same sequence on the CPU with a tiny backbone, to test the script
# Each stage has its own time limit, so one slow or failing stage does not cost the others.
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
DRY=()
if [ "${1:-}" = "--dry-run" ]; then
  DRY=(--device cpu --backbone dinov2_tiny14 --batch 4 --warmup 1 --steps 2 --workers 2 --epochs 2 --run-images 8)
fi
JSON="${OUT:-/tmp}/bench_gpu.jsonl"
T0=$(date +%s)
stage() {  # stage SECONDS ARGS...: one bench.py process under a time limit
  local limit=$1; shift
  echo; echo "######## [$(( $(date +%s) - T0 )) s] bench/bench.py $* ${DRY[*]}"
  timeout --kill-after=10 "$limit" python bench/bench.py "$@" "${DRY[@]}" --json "$JSON" || echo "!! stage failed or timed out (exit $?): $*"
}
echo "######## machine"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>/dev/null || echo "no nvidia-smi"
echo "CPU cores: $(nproc); $(grep -m1 'model name' /proc/cpuinfo)"
python -c "import sys; sys.modules['fastcore'] = sys.modules['nbdev'] = None; import torch, timm, semisupervised_learning.core as c; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'timm', timm.__version__, '| core imports without nbdev/fastcore:', c.__file__)"
# 1. issue 16: whole train() runs (data, checkpoints, health, export included), ViT-S/14 full fine-tune, batch 64:
#    images/s over the training and inside epochs, the share of time between epochs, MFU
stage 150 --config run-gpu-vits-full
# 2. a 20-image folder, 100 short epochs of 2 steps: what is lost between epochs
stage 100 --config run-gpu-vits-folder20
# 3. ViT-L/14 full fine-tune as a whole run: end-to-end MFU (target >= 40%)
stage 150 --config run-gpu-vitl-full
# 4. ViT-B/14 full fine-tune as a whole run
stage 120 --config run-gpu-vitb-full
# 5. the step alone: bf16 matmul peak + ViT-L/14 full fine-tune, batch 32 (compute-only MFU to compare with 3)
stage 100 --config gpu-vitl-full
echo; echo "######## done in $(( $(date +%s) - T0 )) s; JSON lines in $JSON"
[ -f "$JSON" ] && cat "$JSON"
