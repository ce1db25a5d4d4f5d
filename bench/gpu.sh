#!/usr/bin/env bash
# One prepared GPU run for BENCHMARKS.md and the GPU checks: issue 16's numbers, then `nbdev-test --flags gpu`, in under 10 minutes.
# Needs torch + timm (no network, no install: the checkout is put on PYTHONPATH); the GPU checks need nbdev, carried as
# wheels in .whl (see the device README) and installed into /tmp/site by the caller.
#   bash bench/gpu.sh              # on the GPU machine, from the repository root; everything goes to stdout
#   bash bench/gpu.sh --dry-run    # the same sequence on the CPU with a tiny backbone, to test the script
# Each stage has its own time limit inside one overall budget (GPU_BUDGET seconds, default 570), so one slow or failing
# stage does not cost the others; stages that no longer fit are skipped and say so.
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
DRY=()
if [ "${1:-}" = "--dry-run" ]; then
  DRY=(--device cpu --backbone dinov2_tiny14 --batch 4 --workers 2 --epochs 2)
fi
JSON="${OUT:-/tmp}/bench_gpu.jsonl"
T0=$(date +%s) BUDGET=${GPU_BUDGET:-570}
stage() {  # stage SECONDS COMMAND...: one process under min(SECONDS, what is left of the budget)
  local cap=$1; shift
  local left=$(( BUDGET - ($(date +%s) - T0) ))
  local limit=$(( cap < left ? cap : left ))
  echo; echo "######## [$(( $(date +%s) - T0 )) s] $* (limit ${limit} s)"
  if [ "$limit" -lt 30 ]; then echo "!! skipped: ${left} s of the budget left"; return; fi
  timeout --kill-after=10 "$limit" "$@" || echo "!! stage failed or timed out (exit $?): $*"
}
bench() { local cap=$1; shift; stage "$cap" python bench/bench.py "$@" "${DRY[@]}" --json "$JSON"; }
echo "######## machine"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>/dev/null || echo "no nvidia-smi"
echo "CPU cores: $(nproc); $(grep -m1 'model name' /proc/cpuinfo)"
python -c "import sys; sys.modules['fastcore'] = sys.modules['nbdev'] = None; import torch, timm, torchvision, semisupervised_learning.core as c; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'timm', timm.__version__, 'torchvision', torchvision.__version__, '| core imports without nbdev/fastcore:', c.__file__)"
# The images, written once (writing 640 synthetic images took about 40 s per stage in the first GPU run)
EM=/tmp/ssl_gpu_em; EM20=/tmp/ssl_gpu_em20; N=320
# the dry run's 8 images in folders of their own (a folder left by a real run would give it 320 images on the CPU)
[ ${#DRY[@]} -gt 0 ] && EM=/tmp/ssl_gpu_em_dry EM20=/tmp/ssl_gpu_em20_dry N=8
python -c "from semisupervised_learning.core import write_synthetic_em as w; from pathlib import Path; import os
w('$EM', n=$N, size=512, seed=0); Path('$EM20').mkdir(exist_ok=True)
[os.symlink(p, Path('$EM20') / p.name) for p in sorted(Path('$EM').glob('*.png'))[:20] if not (Path('$EM20') / p.name).exists()]"
# 1. the notebooks' GPU checks first (CUDA crops without host syncs, compiled blocks and CUDA graphs vs eager, ViT-L training
#    with checkpoints, the frozen step, a whole ViT-S step without host syncs); the third GPU session left them unfinished
if [ ${#DRY[@]} -eq 0 ]; then
  if command -v nbdev-test >/dev/null || [ -x /tmp/site/bin/nbdev-test ]; then
    export PATH="/tmp/site/bin:$PATH"; stage 240 nbdev-test --flags gpu --timing --n-workers 2 --file-re '^(02_loader|11_training|12_core)\.ipynb$'   # the notebooks with #| gpu checks of the training path
  else echo "!! no nbdev-test: carry the nbdev wheels (.whl) to run the GPU checks"; fi
fi
# 2. issue 16: whole train() runs (data, checkpoints, health, export included), ViT-S/14 full fine-tune, batch 64, crops on
#    the GPU, eager and as CUDA graphs (what TrainConfig.compile does on one GPU); the third session's default-mode and
#    CPU-worker runs are in BENCHMARKS.md (add `--compile-mode default`, or drop `--gpu-crops on`, to repeat them)
bench 60 --config run-gpu-vits-full --images "$EM" --gpu-crops on --epochs 8
bench 110 --config run-gpu-vits-full --images "$EM" --gpu-crops on --epochs 16 --compile
# 3. ViT-L/14 full fine-tune as a whole run, eager and as CUDA graphs: end-to-end MFU (target >= 40%)
bench 80 --config run-gpu-vitl-full --images "$EM" --gpu-crops on --epochs 3
bench 110 --config run-gpu-vitl-full --images "$EM" --gpu-crops on --compile
echo; echo "######## done in $(( $(date +%s) - T0 )) s; JSON lines in $JSON"
[ -f "$JSON" ] && cat "$JSON"
