#!/usr/bin/env python
"""Where a training step spends its time: `torch.profiler` over a few steps of a whole `core.train()` run.

Runs one of bench.py's `run-*` configurations, profiles steps [--start, --start + --steps) of it (CPU and CUDA
activity, the data path included) and prints the ops by device time and by host time, and how busy the GPU was.

    python bench/profile_run.py --config run-gpu-vits-full --epochs 3            # on the GPU machine
    python bench/profile_run.py --config run-cpu-folder20 --epochs 2 --start 1 --steps 2   # on a CPU, to test it
"""
from __future__ import annotations
import argparse, shutil, tempfile, time
from pathlib import Path

import harness  # noqa: F401   first: puts this checkout on sys.path

import torch
from torch.profiler import ProfilerActivity, profile
from semisupervised_learning import core
from bench import RUNS, run_train_config

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--config', default='run-gpu-vits-full', choices=list(RUNS))
    p.add_argument('--epochs', type=int, default=3)
    p.add_argument('--start', type=int, default=12, help='first profiled step (after warm-up)')
    p.add_argument('--steps', type=int, default=6, help='profiled steps')
    p.add_argument('--gpu-crops', choices=['on', 'off'], help="crops made on the GPU (TrainConfig.gpu_crops) or by the CPU loader workers (core's default)")
    p.add_argument('--device', help='override the configuration device')
    p.add_argument('--backbone', help='override the backbone (e.g. dinov2_tiny14)')
    p.add_argument('--batch', type=int, help='override the batch size')
    p.add_argument('--images', help='folder of EM images (default: synthetic ones, written first)')
    p.add_argument('--run-images', type=int, help='how many synthetic images (default: the configuration\'s)')
    p.add_argument('--rows', type=int, default=25)
    a = p.parse_args()
    spec = RUNS[a.config]
    work = Path(tempfile.mkdtemp(prefix='ssl_profile_'))
    data = a.images or str(work / 'images')
    if not a.images: core.write_synthetic_em(data, n=a.run_images or spec['images'], size=spec['size'], seed=0)
    overrides = {k: v for k, v in dict(device=a.device, backbone=a.backbone, epochs=a.epochs, batch_size=a.batch).items() if v is not None}
    if a.gpu_crops: overrides['gpu_crops'] = a.gpu_crops == 'on'
    config = run_train_config(spec, data, work / 'run', overrides)
    device = torch.device(config.device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == 'cuda' else [])
    prof, calls, span = profile(activities=activities), [0], [0.0, 0.0]
    def sync():
        if device.type == 'cuda': torch.cuda.synchronize(device)
    class Profiled(core.TrainingCallback):     # the profiler spans the loader's next() between steps too
        def before_step(self, epoch, step, batch_size):
            if calls[0] == a.start: sync(); prof.__enter__(); span[0] = time.perf_counter()
        def after_step(self, epoch, step, batch_size, loss):
            calls[0] += 1
            if calls[0] == a.start + a.steps: sync(); span[1] = time.perf_counter(); prof.__exit__(None, None, None)
    core.train(config, callbacks=[Profiled()])
    if not span[1]: raise SystemExit(f"the run had {calls[0]} steps, fewer than --start {a.start} + --steps {a.steps}")
    wall = span[1] - span[0]
    events = prof.key_averages()
    print(f"\n== {a.config} ({config.backbone_name}, batch {config.batch_size}, {device}): {a.steps} steps profiled, "
          f"{1e3 * wall / a.steps:.1f} ms per step wall ({config.batch_size * a.steps / wall:.0f} images/s)")
    if device.type == 'cuda':
        kernels = sum(e.self_device_time_total for e in events if e.device_type == torch.autograd.DeviceType.CUDA) / 1e6
        print(f"GPU kernels {1e3 * kernels / a.steps:.1f} ms per step = {100 * kernels / wall:.0f}% busy; "
              f"{sum(e.count for e in events if e.device_type == torch.autograd.DeviceType.CUDA) // a.steps} kernels per step")
        print(events.table(sort_by='self_cuda_time_total', row_limit=a.rows, max_name_column_width=60))
    print(events.table(sort_by='self_cpu_time_total', row_limit=a.rows, max_name_column_width=60))
    shutil.rmtree(work, ignore_errors=True)

if __name__ == '__main__': main()
