#!/usr/bin/env bash
# One prepared GPU benchmark run for BENCHMARKS.md: every GPU number in about 3-6 minutes on one H100.
# Needs torch + timm (no nbdev/fastcore, no network, no install: the checkout is put on PYTHONPATH).
#   bash bench/gpu.sh              # on the GPU machine, from the repository root; everything goes to stdout
#   bash bench/gpu.sh --dry-run    # the same sequence on the CPU with a tiny backbone, to test the script
# Each stage has its own time limit, so one slow or failing stage does not cost the others.
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
DRY=()
if [ "${1:-}" = "--dry-run" ]; then
  DRY=(--device cpu --backbone dinov2_tiny14 --batch 4 --warmup 1 --steps 2 --workers 2)
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
# 1. bf16 matmul peak + ViT-L/14 full fine-tune, batch 32: images/s, MFU, peak memory
stage 130 --config gpu-vitl-full
# 2. ViT-L/14 frozen backbone, batch 64, 14 loader workers: end-to-end images/s including data
stage 110 --config gpu-vitl-frozen
# 3. the CPU multi-crop pipeline alone with 14 workers: can it feed stage 2?
stage 60 --config gpu-vitl-frozen --data-only --steps 16
# 4. ViT-S/14 frozen (batch 128) and ViT-L/14 last 4 blocks (batch 32)
stage 120 --config gpu-vits-frozen,gpu-vitl-last4
echo; echo "######## done in $(( $(date +%s) - T0 )) s; JSON lines in $JSON"
[ -f "$JSON" ] && cat "$JSON"
