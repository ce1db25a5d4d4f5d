#!/usr/bin/env python
"""Training-step benchmark of `semisupervised_learning.core` for named configurations.

For each configuration it builds the models, loss, optimiser and schedule with core's own functions
(`load_dinov2(pretrained=False)`, `create_dino_models`, `DINOLoss`, `create_optimizer`, `WarmupCosineSchedule`),
feeds `MultiCropDataset` + `create_dataloader` batches, and times the body of `core.train_one_epoch`
step by step (the same core calls in the same order, without the progress bar), so that the time of every step
splits into data wait (blocked on the loader) and compute (host-to-device copy, forward, loss, backward,
clipping, optimiser, schedule, teacher EMA; `torch.cuda.synchronize()` before the clock stops).

Reports images/s (end to end, and compute only), ms per step (data wait / compute), peak memory
(CPU: `resource.getrusage` max RSS of this process and of its largest loader worker; CUDA: max allocated),
FLOPs per image (counted with `torch.utils.flop_counter.FlopCounterMode` on one real step, and the analytic
ViT formula), achieved TFLOP/s and MFU against a matmul peak measured first in the same process, in the dtype the
step computes in (bf16 under autocast, core's default on a GPU and on CPUs with bf16 units; fp32 with --amp off or
without them).

    python bench/bench.py --config cpu-small                       # one configuration
    python bench/bench.py --config cpu-small --compare-lightly     # and ../shared/bench/lightly_ref.py, same settings
    python bench/bench.py --config gpu-vitl-full,gpu-vitl-frozen   # several, one process, one matmul peak
    python bench/bench.py --config cpu-tiny --adapt blocks --trainable-blocks 1   # another adaptation (library's words)
    python bench/bench.py --list                                   # the configurations
"""
from __future__ import annotations
import argparse, contextlib, gc, json, os, re, resource, shutil, statistics, subprocess, sys, tempfile, time
from pathlib import Path

from harness import SHARED, log     # first: puts this checkout on sys.path

import torch
from semisupervised_learning import core

ISBI = SHARED / 'data' / 'isbi2012' / 'train' / 'images'
LIGHTLY_REF = SHARED / 'bench' / 'lightly_ref.py'

# adapt: how the backbone adapts, in TrainConfig's words: 'frozen' (head only, backbone shared by student and teacher),
# 'full', or 'blocks' with trainable_blocks=N (the last N blocks). 'lora' is not timed here (see BENCH_ADAPT)
CONFIGS = {
    'cpu-tiny':         dict(backbone='dinov2_tiny14', adapt='full', batch=8, workers=2, warmup=2, steps=6,
                             device='cpu'),
    'cpu-small':        dict(backbone='dinov2_vits14', depth=4, adapt='full', batch=8, workers=2, warmup=1, steps=4,
                             device='cpu'),
    'cpu-small-frozen': dict(backbone='dinov2_vits14', depth=4, adapt='frozen', batch=8, workers=2, warmup=1, steps=4,
                             device='cpu'),
    'gpu-vits-frozen':  dict(backbone='dinov2_vits14', adapt='frozen', batch=128, workers=14, warmup=4, steps=12,
                             device='cuda'),
    'gpu-vitb-frozen':  dict(backbone='dinov2_vitb14', adapt='frozen', batch=64, workers=14, warmup=4, steps=12,
                             device='cuda'),
    'gpu-vitb-last4':   dict(backbone='dinov2_vitb14', adapt='blocks', trainable_blocks=4, batch=32, workers=14,
                             warmup=4, steps=10, device='cuda'),
    'gpu-vitb-full':    dict(backbone='dinov2_vitb14', adapt='full', batch=32, workers=14, warmup=4, steps=10,
                             device='cuda'),
    'gpu-vitl-frozen':  dict(backbone='dinov2_vitl14', adapt='frozen', batch=64, workers=14, warmup=4, steps=12,
                             device='cuda'),
    'gpu-vitl-last4':   dict(backbone='dinov2_vitl14', adapt='blocks', trainable_blocks=4, batch=32, workers=14,
                             warmup=4, steps=10, device='cuda'),
    'gpu-vitl-full':    dict(backbone='dinov2_vitl14', adapt='full', batch=32, workers=14, warmup=4, steps=10,
                             device='cuda'),
}
# the adaptations the step configurations time: the analytic FLOP formula has a term for each; 'lora' (adapters,
# backward through every block for activations only) has none, so it is refused rather than mis-counted
BENCH_ADAPT = ('frozen', 'blocks', 'full')
DEFAULTS = dict(depth=None, trainable_blocks=None, n_global=2, n_local=8, global_size=224, local_size=98, out_dim=256)
# Whole runs of `core.train(TrainConfig(...))`, data and between-epoch work included: a folder of `images` synthetic
# EM images of `size` px (or --images), and the TrainConfig settings. head_warmup_epochs=0: the backbone trains from step 1.
RUNS = {
    'run-cpu-folder20': dict(images=20, size=512, config=dict(backbone='dinov2_tiny14', adapt='full', head_warmup_epochs=0,
                             epochs=30, warmup_epochs=2, batch_size=8, out_dim=256, hidden_dim=512, bottleneck_dim=128,
                             num_workers=2, save_every=10, log_every=2, device='cpu')),
    # the same 20 images as one long epoch of 60 steps (24 samples per image): what short epochs cost, measured against it
    'run-cpu-folder20-long': dict(images=20, size=512, config=dict(backbone='dinov2_tiny14', adapt='full', head_warmup_epochs=0,
                                  epochs=1, samples_per_image=24, warmup_epochs=0, batch_size=8, out_dim=256, hidden_dim=512,
                                  bottleneck_dim=128, num_workers=2, save_every=10, log_every=2, device='cpu')),
    'run-gpu-vits-full': dict(images=640, size=512, config=dict(backbone='dinov2_vits14', adapt='full', head_warmup_epochs=0,
                              epochs=12, warmup_epochs=1, batch_size=64, num_workers=14, save_every=5, log_every=10, device='cuda')),
    'run-gpu-vitb-full': dict(images=640, size=512, config=dict(backbone='dinov2_vitb14', adapt='full', head_warmup_epochs=0,
                              epochs=8, warmup_epochs=1, batch_size=64, num_workers=14, save_every=4, log_every=10, device='cuda')),
    'run-gpu-vitl-full': dict(images=320, size=512, config=dict(backbone='dinov2_vitl14', adapt='full', head_warmup_epochs=0,
                              epochs=4, warmup_epochs=1, batch_size=32, num_workers=14, save_every=2, log_every=10, device='cuda')),
    'run-gpu-vits-folder20': dict(images=20, size=512, config=dict(backbone='dinov2_vits14', adapt='full', head_warmup_epochs=0,
                                  epochs=100, warmup_epochs=5, batch_size=10, num_workers=14, save_every=20, log_every=2, device='cuda')),
}



def sync(device):
    if device.type == 'cuda': torch.cuda.synchronize(device)

# ----------------------------------------------------------------------------------------------------------- peak
def matmul_peak(device, bf16=True, n=None, iters=None, repeats=5) -> tuple[float, str]:
    "Best achieved TFLOP/s of a square matmul in the dtype the step computes in (bf16 under autocast, else fp32)."
    cuda = device.type == 'cuda'
    dtype = torch.bfloat16 if bf16 else torch.float32
    n = n or (8192 if cuda else 2048); iters = iters or (100 if cuda else 4)
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3): a @ b
    sync(device); best = 0.0
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(iters): c = a @ b
        sync(device); dt = time.perf_counter() - t
        best = max(best, 2 * n**3 * iters / dt / 1e12)
    del a, b, c
    return best, f"{str(dtype).removeprefix('torch.')} {n}x{n} matmul, best of {repeats}x{iters}"

# ---------------------------------------------------------------------------------------------------------- flops
def analytic_flops_per_image(backbone, cfg, head_hidden=2048, bottleneck=256) -> float:
    """Model FLOPs of one training step per image (2 per multiply-add; matmuls only, norms/softmax/elementwise ignored).
    ViT forward of N tokens: depth * (24 N D^2 + 4 N^2 D) + patch embedding 2 (N-1) (3 * 14^2) D; head MLP per crop."""
    D, L = backbone.embed_dim, len(backbone.blocks)
    prefix = getattr(backbone, 'num_prefix_tokens', 1)
    def block(S): N = (S // 14)**2 + prefix; return 24 * N * D**2 + 4 * N**2 * D
    def embed(S): return 2 * (S // 14)**2 * 3 * 14 * 14 * D
    head = 2 * (D * head_hidden + head_hidden * head_hidden + head_hidden * bottleneck + bottleneck * cfg['out_dim'])
    sizes = [cfg['global_size']] * cfg['n_global'] + [cfg['local_size']] * cfg['n_local']
    globals_ = sizes[:cfg['n_global']]
    fwd_all = sum(L * block(S) + embed(S) for S in sizes)
    fwd_glob = sum(L * block(S) + embed(S) for S in globals_)
    heads_all, heads_glob = head * len(sizes), head * len(globals_)
    if cfg['adapt'] == 'frozen':   # one backbone pass shared by both heads, no backward through it
        return fwd_all + 3 * heads_all + heads_glob
    if cfg['adapt'] == 'full':     # student fwd + bwd (2x fwd) on all crops, teacher fwd on the globals
        return 3 * (fwd_all + heads_all) + fwd_glob + heads_glob
    if cfg['adapt'] != 'blocks': raise ValueError(f"no FLOP formula for adapt={cfg['adapt']!r}; one of {BENCH_ADAPT}")
    k = int(cfg['trainable_blocks'])   # backward (activations + weights) through the last k blocks only
    return fwd_all + sum(2 * k * block(S) for S in sizes) + 3 * heads_all + fwd_glob + heads_glob

# ----------------------------------------------------------------------------------------------------------- data
def image_paths(images, min_count=32):
    "The benchmark's image files: --images, else ISBI 2012 train from ../shared, else synthetic EM PNGs (core)."
    if images: return core.find_em_images(images), str(images)
    if ISBI.is_dir(): return core.find_em_images(ISBI), str(ISBI)
    folder = Path(tempfile.mkdtemp(prefix='ssl_bench_'))
    return core.write_synthetic_em(folder, n=min_count, size=512), f'{folder} (synthetic, core.write_synthetic_em)'

def make_loader(paths, cfg, n_batches):
    "A `MultiCropDataset` of exactly `n_batches * batch` items (the image list cycled) and core's loader over it."
    n = cfg['batch'] * n_batches
    items = [paths[i % len(paths)] for i in range(n)]
    ds = core.MultiCropDataset(items, n_global_crops=cfg['n_global'], n_local_crops=cfg['n_local'],
                               global_size=cfg['global_size'], local_size=cfg['local_size'], seed=0)
    return core.create_dataloader(ds, batch_size=cfg['batch'], num_workers=cfg['workers'], seed=0)

# ----------------------------------------------------------------------------------------------------------- step
_compiled = contextlib.ExitStack()   # the backbones of the configuration being measured, compiled until run_ours closes it

def build(cfg, device, compile=False, compile_mode=None):
    kwargs = {} if cfg['depth'] is None else dict(depth=cfg['depth'])
    backbone = core.load_dinov2(cfg['backbone'], pretrained=False, **kwargs)
    if cfg.get('objective') == 'dinov2': core.add_mask_token(backbone)       # iBOT's, as core.train adds it
    depth = len(backbone.blocks)
    if cfg['adapt'] == 'blocks' and cfg['trainable_blocks'] > depth:   # e.g. gpu.sh --dry-run's 2-block tiny backbone
        log(f"  trainable_blocks={cfg['trainable_blocks']} > depth {depth}: using {depth}")
        cfg['trainable_blocks'] = depth
    backbone = core.adapt_backbone(backbone, cfg['adapt'], trainable_blocks=cfg['trainable_blocks'])
    student, teacher = core.create_dino_models(backbone, device, out_dim=cfg['out_dim'])
    loss_fn = (core.DINOv2Loss(out_dim=cfg['out_dim'], n_global_crops=cfg['n_global']) if cfg.get('objective') == 'dinov2'   # + iBOT, KoLeo
               else core.DINOLoss(out_dim=cfg['out_dim'], n_global_crops=cfg['n_global'])).to(device)
    if compile: _compiled.enter_context(core.compiled_backbones(student.backbone, teacher.backbone, **({'mode': compile_mode} if compile_mode else {})))   # default mode unless --compile-mode
    optimizer = core.create_optimizer(student, lr=5e-4 * cfg['batch'] / 256)
    return student, teacher, loss_fn, optimizer

def make_step(student, teacher, loss_fn, optimizer, schedule, device, epoch=0, clip_grad=3.0, amp='core'):
    """`core.train_step` driven by a `core.TrainingSchedule` as `core.train_one_epoch` drives it, minus its progress bar
    and logging. amp='core' autocasts to bf16 as core does by default (`core.amp_enabled`); 'bf16' on any device; 'off'
    never."""
    amp = {'core': None, 'bf16': True, 'off': False}[amp]
    state = dict(loss_sum=torch.zeros((), device=device), first_bad_step=torch.full((), -1, device=device))
    def step(crops, i):
        loss, _ = core.train_step(student, teacher, crops, loss_fn, optimizer, schedule, epoch=epoch,
                                  momentum=schedule.momentum_at(epoch, i), clip_grad=clip_grad,
                                  freeze_last_layer=schedule.last_layer_frozen(epoch), device=device, amp=amp,
                                  teacher_temp=schedule.teacher_temp_at(epoch))
        state['loss_sum'] += loss
        state['first_bad_step'] = torch.where((state['first_bad_step'] < 0) & ~torch.isfinite(loss), i, state['first_bad_step'])
        return crops[0].shape[0]
    return step, state

def timed_pass(loader, step, device, warmup, count_flops=False):
    "One pass over the loader: the first `warmup` steps untimed (the first under the FLOP counter), then per-step timings."
    waits, computes, images, flops, t_start = [], [], 0, None, None
    it = iter(loader); i = 0
    for i in range(len(loader)):
        t0 = time.perf_counter(); crops = next(it); t1 = time.perf_counter()
        if i == 0 and count_flops:
            from torch.utils.flop_counter import FlopCounterMode
            with FlopCounterMode(display=False) as fc: bs = step(crops, i)
            flops = fc.get_total_flops() / bs
        else: bs = step(crops, i)
        sync(device); t2 = time.perf_counter()
        if warmup == 0 and i == 0: t_start = t0
        if i == warmup - 1: t_start = t2
        if i >= warmup: waits.append(t1 - t0); computes.append(t2 - t1); images += bs
    wall = time.perf_counter() - t_start
    return dict(waits=waits, computes=computes, images=images, wall=wall, flops_counted=flops)

def run_ours(name, cfg, device, paths, repeats=1, peak=None, via_train_one_epoch=False, amp='core', compile=False, compile_mode=None):
    "Build once, then `repeats` passes of warmup + timed steps; returns the summary of the median pass."
    if device.type == 'cuda': torch.cuda.reset_peak_memory_stats(device); torch.cuda.empty_cache()
    torch.manual_seed(0)
    t_build = time.perf_counter()
    student, teacher, loss_fn, optimizer = build(cfg, device, compile, compile_mode)
    n_batches = cfg['warmup'] + cfg['steps']
    loader = make_loader(paths, cfg, n_batches)
    # the momentum's cosine over 10 passes; the lr's over all the passes measured
    schedule = core.TrainingSchedule.of(core.WarmupCosineSchedule(optimizer, warmup_steps=n_batches,
                                                                  total_steps=10 * n_batches * max(1, repeats)),
                                        loss_fn, steps_per_epoch=n_batches, epochs=10)
    step, state = make_step(student, teacher, loss_fn, optimizer, schedule, device, amp=amp)
    t_build = time.perf_counter() - t_build
    n_trainable = sum(p.numel() for p in student.parameters() if p.requires_grad)
    analytic = analytic_flops_per_image(student.backbone, cfg)
    passes = []
    for r in range(repeats):
        if via_train_one_epoch:   # cross-check: core's own loop, timed as a whole (no split)
            t = time.perf_counter()
            core.train_one_epoch(student, teacher, loader, loss_fn, optimizer, device, schedule, epoch=0,
                                 log_every=10**9, progress=False)
            sync(device); wall = time.perf_counter() - t
            passes.append(dict(waits=[0.0] * n_batches, computes=[wall / n_batches] * n_batches, images=cfg['batch'] * n_batches, wall=wall,
                               flops_counted=None, note='core.train_one_epoch incl. warm-up steps'))
        else:
            passes.append(timed_pass(loader, step, device, cfg['warmup'], count_flops=(r == 0 and not compile)))
        p = passes[-1]
        log(f"  [{name}] pass {r + 1}/{repeats}: {p['images'] / p['wall']:.2f} images/s")
    if not (state['first_bad_step'] < 0): log(f"  [{name}] WARNING: non-finite loss in the benchmark steps")
    counted = passes[0]['flops_counted']
    rates = [p['images'] / p['wall'] for p in passes]
    med = passes[sorted(range(len(rates)), key=rates.__getitem__)[len(rates) // 2]]
    waits, computes = med['waits'], med['computes']
    res = dict(config=name, device=device_name(device), backbone=cfg['backbone'], depth=len(student.backbone.blocks),
               adapt=cfg['adapt'], trainable_blocks=cfg['trainable_blocks'], amp=amp,
               fused_adamw=optimizer.defaults.get('fused'), batch=cfg['batch'],
               crops=f"{cfg['n_global']}x{cfg['global_size']}+{cfg['n_local']}x{cfg['local_size']}",
               workers=cfg['workers'], warmup=cfg['warmup'], steps=cfg['steps'], repeats=repeats,
               trainable_params_M=n_trainable / 1e6, build_s=t_build,
               images_per_s=statistics.median(rates), images_per_s_best=max(rates), images_per_s_all=rates,
               compute_images_per_s=cfg['batch'] / statistics.median(computes),
               step_ms=1e3 * med['wall'] / len(computes), data_wait_ms=1e3 * statistics.mean(waits),
               compute_ms=1e3 * statistics.mean(computes), compute_ms_median=1e3 * statistics.median(computes),
               gflop_per_image_counted=None if counted is None else counted / 1e9,
               gflop_per_image_analytic=analytic / 1e9,
               cpu_max_rss_gb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
               worker_max_rss_gb=resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1e6)
    if via_train_one_epoch: res['note'] = 'timed core.train_one_epoch as a whole (warm-up steps included, no split)'
    if device.type == 'cuda':
        res['cuda_max_allocated_gb'] = torch.cuda.max_memory_allocated(device) / 1e9
        res['cuda_max_reserved_gb'] = torch.cuda.max_memory_reserved(device) / 1e9
    if peak:
        res['peak_tflops'], res['peak_dtype'] = peak
        peak = peak[0]
        for key, rate in [('', res['images_per_s']), ('compute_', res['compute_images_per_s'])]:
            res[f'{key}tflops_analytic'] = analytic * rate / 1e12
            res[f'{key}mfu_analytic'] = res[f'{key}tflops_analytic'] / peak
            if counted:
                res[f'{key}tflops_counted'] = counted * rate / 1e12
                res[f'{key}mfu_counted'] = res[f'{key}tflops_counted'] / peak
    _compiled.close()
    del loader, student, teacher, optimizer, loss_fn, step, state
    gc.collect()
    if device.type == 'cuda': torch.cuda.empty_cache()
    return res

def run_data_only(name, cfg, paths):
    "Loader throughput alone (MultiCropDataset + create_dataloader with cfg's workers, pinned when CUDA is there): can data keep up?"
    n_batches = cfg['warmup'] + cfg['steps']
    loader = make_loader(paths, cfg, n_batches)
    p = timed_pass(loader, lambda crops, i: crops[0].shape[0], torch.device('cpu'), cfg['warmup'])
    rate = p['images'] / p['wall']
    res = dict(config=name, mode='data-only', device=device_name(torch.device('cpu')), batch=cfg['batch'], workers=cfg['workers'],
               crops=f"{cfg['n_global']}x{cfg['global_size']}+{cfg['n_local']}x{cfg['local_size']}", warmup=cfg['warmup'],
               steps=cfg['steps'], images_per_s=rate, images_per_s_per_worker=rate / max(1, cfg['workers']),
               pin_memory=loader.pin_memory)
    log(f"{name} data only: {rate:.1f} images/s with {cfg['workers']} workers ({res['images_per_s_per_worker']:.1f} per worker), "
        f"batch {cfg['batch']}, {res['crops']}, pin_memory={loader.pin_memory}, {cfg['steps']} batches after {cfg['warmup']} warm-up")
    del loader
    return res

def run_train_config(spec, data, out, overrides=None) -> core.TrainConfig:
    "The TrainConfig of a `RUNS` entry: random init, no progress bar, the entry's settings, then `overrides`."
    return core.TrainConfig(**{**dict(pretrained=False, progress=False), **spec['config'], **(overrides or {}), 'data': str(data), 'out': str(out)})

def describe_workers(loader:core.MultiCropLoader) -> str:
    "How the loader `train()` built runs its workers, read from the loader itself."
    return (('run on into the next epoch' if loader.batch_sampler.stream else 'restarted each epoch')
            + (' at the lowest CPU priority' if loader.worker_init_fn.keywords.get('low_priority') else ''))

class RunTimer(core.TrainingCallback):
    """Hooks for `core.train(callbacks=)`: stamps each step (CUDA synchronised at the last step of each epoch, where
    the loop reads the loss anyway), each call for the next batch, each health record and checkpoint write."""
    def __init__(self, device, steps_per_epoch:int):
        self.device, self.steps_per_epoch, self.started = device, steps_per_epoch, {}
        self.stamps = []          # (epoch, start, end, images) of every step
        self.waits = []           # (start, seconds) of every call for the loader's next batch: a pass's start
                                  # (a restarted loader's restart), crops made on the device (GPUCropLoader),
                                  # waiting for the workers, and the call ending the pass
        self.parts = {'health': [], 'checkpoint': []}   # (start, seconds) of the epoch-end work
    def _start(self, what): self.started[what] = time.perf_counter()
    def _took(self, what): t = self.started.pop(what); return t, time.perf_counter() - t
    def before_step(self, epoch, step, batch_size): self._start('step')
    def after_step(self, epoch, step, batch_size, loss):
        if step + 1 == self.steps_per_epoch: sync(self.device)
        t, took = self._took('step'); self.stamps.append((epoch, t, t + took, batch_size))
    def before_fetch(self, epoch, step): self._start('fetch')
    def after_fetch(self, epoch, step, batch): self.waits.append(self._took('fetch'))
    def before_health(self, epoch): self._start('health')
    def after_health(self, epoch): self.parts['health'].append(self._took('health'))
    def before_save(self, epoch, path): self._start('checkpoint')
    def after_save(self, epoch, path): self.parts['checkpoint'].append(self._took('checkpoint'))

def run_train(name, spec, images=None, overrides=None, peak=None, compile_mode=None, loader=None):
    """One whole `core.train(TrainConfig(...))` run, timed by a `RunTimer` on train's hooks: each step stamped
    (CUDA synchronised at the last step of each epoch, where core's loop reads the loss anyway). Splits the run into setup
    (before the first step), inside epochs (first step start to last step end), between epochs (from one epoch's last step
    to the next one's first: waiting for the next batch, checkpoint, health, logging) and the tail (last checkpoint,
    export, pictures). Every call for a batch is timed ('next batch'): with core's loader that is
    waiting for the workers, data the same run as one long epoch waits for between its steps, so 'epoch-end work' is
    the time between epochs without it. It also holds a restarted loader's restart (--loader restart) and crops made on
    the device (--gpu-crops on): read epoch-end work as a lower bound there."""
    work = Path(tempfile.mkdtemp(prefix=f'ssl_{name}_'))
    if images: data, source = str(images), str(images)
    else:
        core.write_synthetic_em(work / 'images', n=spec['images'], size=spec['size'], seed=0)
        data, source = str(work / 'images'), f"{spec['images']} synthetic {spec['size']} px EM images (core.write_synthetic_em)"
    config = run_train_config(spec, data, work / 'run', overrides)
    device = torch.device(config.device)
    if device.type == 'cuda': torch.cuda.reset_peak_memory_stats(device)
    steps_per_epoch = len(core.MultiCropDataset(data).items) * config.samples_per_image // config.batch_size   # pages of stacks count
    timer = RunTimer(device, steps_per_epoch)
    # --loader restart: the loader before low-priority workers, restarted each epoch, workers at normal priority
    loader_options = dict(prefetch_next_epoch=False, low_priority_workers=False) if loader == 'restart' else None
    t_start = time.perf_counter()
    result = core.train(config, callbacks=[timer], loader_options=loader_options,
                        compile_options=dict(mode=compile_mode) if compile_mode else None)   # train's choice replaced
    t_end = time.perf_counter()
    stamps, waits, parts = timer.stamps, timer.waits, timer.parts
    if len(result['loader']) != steps_per_epoch: raise RuntimeError(f"{len(result['loader'])} steps per epoch, expected {steps_per_epoch}")
    epochs = sorted({s[0] for s in stamps})
    first = {e: min(s[1] for s in stamps if s[0] == e) for e in epochs}
    last = {e: max(s[2] for s in stamps if s[0] == e) for e in epochs}
    between = [first[b] - last[a] for a, b in zip(epochs, epochs[1:])]
    at_boundary = lambda t: any(last[a] <= t < first[b] for a, b in zip(epochs, epochs[1:]))
    parts['next batch'] = waits
    boundary = {kind: 1e3 * sum(d for t, d in done if at_boundary(t)) / max(1, len(between))
                for kind, done in parts.items()}      # ms per boundary in the health record, in starting the checkpoint, waiting for data
    boundary['rest'] = 1e3 * sum(between) / max(1, len(between)) - sum(boundary.values())   # loss read, epoch line, freeing the last batch
    step_waits = [d for t, d in waits if first[epochs[0]] <= t < last[epochs[-1]] and not at_boundary(t)]   # inside epochs
    inside = [last[e] - first[e] for e in epochs]
    train_span = last[epochs[-1]] - first[epochs[0]]
    n_images = sum(s[3] for s in stamps)
    later = [s for s in stamps if s[0] > epochs[0]]     # epoch 0 left out: compiling, cuDNN autotuning, the first checkpoint
    res = dict(config=name, mode='train-run', device=device_name(device), data=source, backbone=config.backbone_name,
               adapt=config.adapt, amp=core.amp_enabled(device, config.amp), batch=config.batch_size, workers=config.num_workers,
               epochs=len(epochs), steps_per_epoch=steps_per_epoch, images_trained=n_images,
               crops=f"{config.n_global_crops}x{config.global_size}+{config.n_local_crops}x{config.local_size}",
               objective='dinov2' if isinstance(result['loss_fn'], core.DINOv2Loss) else 'dino',
               crops_made_on='device' if isinstance(result['loader'], core.GPUCropLoader) else 'CPU workers',
               loader_workers=describe_workers(getattr(result['loader'], 'loader', result['loader'])),
               compiled=(compile_mode or "train()'s choice") if config.compile else False,
               wall_s=t_end - t_start, setup_s=first[epochs[0]] - t_start, inside_epochs_s=sum(inside),
               between_epochs_s=sum(between), tail_s=t_end - last[epochs[-1]],
               between_fraction=sum(between) / train_span, between_ms_per_epoch=1e3 * sum(between) / max(1, len(between)),
               between_ms_parts=boundary, data_wait_ms_inside_epochs=1e3 * sum(step_waits) / max(1, len(step_waits)),
               epoch_end_fraction=(sum(between) - boundary['next batch'] * len(between) / 1e3) / train_span,
               images_per_s=n_images / train_span, images_per_s_inside_epochs=n_images / sum(inside),
               images_per_s_after_epoch0=sum(s[3] for s in later) / (last[epochs[-1]] - first[epochs[1]]) if later else None,
               images_per_s_inside_epochs_after_epoch0=sum(s[3] for s in later) / sum(inside[1:]) if later else None,
               cpu_max_rss_gb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6)
    if device.type == 'cuda': res['cuda_max_allocated_gb'] = torch.cuda.max_memory_allocated(device) / 1e9
    if peak and config.adapt not in BENCH_ADAPT:      # LoRA has no FLOP formula here: no MFU rather than a wrong one
        log(f"  no MFU: no FLOP formula for adapt={config.adapt!r} (one of {', '.join(BENCH_ADAPT)})")
    elif peak:
        flop_cfg = dict(adapt=config.adapt, trainable_blocks=config.trainable_blocks, global_size=config.global_size,
                        local_size=config.local_size,
                        n_global=config.n_global_crops, n_local=config.n_local_crops, out_dim=config.out_dim)
        flops = analytic_flops_per_image(result['teacher'].backbone, flop_cfg, config.hidden_dim, config.bottleneck_dim)
        res.update(gflop_per_image_analytic=flops / 1e9, peak_tflops=peak[0], peak_dtype=peak[1],
                   mfu_analytic=flops * res['images_per_s'] / 1e12 / peak[0],
                   mfu_inside_epochs=flops * res['images_per_s_inside_epochs'] / 1e12 / peak[0],
                   mfu_after_epoch0=flops * res['images_per_s_after_epoch0'] / 1e12 / peak[0] if later else None,
                   mfu_inside_epochs_after_epoch0=flops * res['images_per_s_inside_epochs_after_epoch0'] / 1e12 / peak[0] if later else None)
    log(f"{name}: {res['images_per_s']:.1f} images/s over the training ({res['images_per_s_inside_epochs']:.1f} inside epochs"
        + (f", {res['images_per_s_after_epoch0']:.1f} from the second epoch on, {res['images_per_s_inside_epochs_after_epoch0']:.1f} inside those epochs" if later else '') + "); "
        f"between epochs {res['between_epochs_s']:.2f} s = {100 * res['between_fraction']:.1f}% of the training "
        f"({res['between_ms_per_epoch']:.0f} ms per epoch boundary: " + ', '.join(f'{k} {v:.0f}' for k, v in boundary.items())
        + f"; a step inside an epoch waits {res['data_wait_ms_inside_epochs']:.0f} ms for its batch), "
        f"epoch-end work without the wait for the next batch {100 * res['epoch_end_fraction']:.1f}%; {res['epochs']} epochs x {steps_per_epoch} steps of batch {res['batch']}, "
        f"{res['crops']}, {res['backbone']} adapt={res['adapt']} amp={res['amp']} objective={res['objective']}, crops made on the {res['crops_made_on']}, compiled={res['compiled']}, {res['workers']} workers ({res['loader_workers']}); "
        f"wall {res['wall_s']:.1f} s = setup {res['setup_s']:.1f} + epochs {res['inside_epochs_s']:.1f} + between {res['between_epochs_s']:.1f} "
        f"+ tail (last save, export, pictures) {res['tail_s']:.1f} s; data: {source}"
        + (f"; MFU {100 * res['mfu_analytic']:.1f}% over the training ({100 * res['mfu_inside_epochs']:.1f}% inside epochs"
           + (f", {100 * res['mfu_after_epoch0']:.1f}% from the second epoch on, {100 * res['mfu_inside_epochs_after_epoch0']:.1f}% inside those epochs" if later else '')
           + f") of {peak[0]:.0f} TFLOP/s {peak[1]}" if peak else '')
        + (f"; CUDA max allocated {res['cuda_max_allocated_gb']:.1f} GB" if 'cuda_max_allocated_gb' in res else ''))
    shutil.rmtree(work, ignore_errors=True)
    return res

def device_name(device):
    if device.type == 'cuda': return torch.cuda.get_device_name(device)
    model = next((l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name')), 'CPU') \
        if os.path.exists('/proc/cpuinfo') else 'CPU'
    return f"{model}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"

# -------------------------------------------------------------------------------------------------------- lightly
def run_lightly(cfg, images_dir, backbone, timeout=1800):
    "../shared/bench/lightly_ref.py with the same arch, depth, crops, batch, head out_dim, workers and freezing."
    if cfg['adapt'] not in ('frozen', 'full'):
        raise SystemExit(f"lightly_ref.py has no last-N-blocks mode (adapt={cfg['adapt']!r}): compare with "
                         "adapt 'frozen' or 'full'.")
    arch, arch_kwargs = core.DINOV2_ARCHS[cfg['backbone']]
    if arch_kwargs: raise SystemExit(f"{cfg['backbone']} is not a standard timm arch; lightly_ref.py cannot build it (use cpu-small).")
    cmd = [sys.executable, str(LIGHTLY_REF), '--images', str(images_dir), '--steps', str(cfg['steps']),
           '--warmup', str(cfg['warmup']), '--batch', str(cfg['batch']), '--n-local', str(cfg['n_local']),
           '--global-size', str(cfg['global_size']), '--local-size', str(cfg['local_size']), '--arch', arch,
           '--depth', str(len(backbone.blocks)), '--out-dim', str(cfg['out_dim']), '--workers', str(cfg['workers'])]
    if cfg['adapt'] == 'frozen': cmd.append('--freeze-backbone')
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    m = re.search(r'lightly images/s:\s*([0-9.]+)', out.stdout)
    if not m: raise RuntimeError(f"lightly_ref.py failed:\n{out.stdout}\n{out.stderr[-3000:]}")
    return float(m.group(1)), ' '.join(cmd)

# ----------------------------------------------------------------------------------------------------------- main
def adapt_text(res) -> str:
    "adapt as the summary prints it: 'full', 'frozen' or 'blocks trainable_blocks=N'."
    return res['adapt'] + (f" trainable_blocks={res['trainable_blocks']}" if res['adapt'] == 'blocks' else '')

def set_adapt(p, name, cfg, adapt=None, trainable_blocks=None):
    "--adapt / --trainable-blocks over configuration `name`'s adapt and trainable_blocks, refusing what is not timed."
    if adapt is not None: cfg.update(adapt=adapt, trainable_blocks=None)
    if trainable_blocks is not None: cfg['trainable_blocks'] = trainable_blocks
    if cfg['adapt'] not in BENCH_ADAPT:
        p.error(f"{name}: adapt {cfg['adapt']!r} is not timed here: bench.py times {', '.join(BENCH_ADAPT)} (its "
                "analytic FLOP formula has no LoRA term); bench/pretrained_start.py --modes lora trains and probes it")
    if cfg['adapt'] == 'blocks' and cfg['trainable_blocks'] is None:
        p.error(f"{name}: adapt 'blocks' needs --trainable-blocks N (how many of the last blocks train)")
    if cfg['adapt'] != 'blocks' and cfg['trainable_blocks'] is not None:
        p.error(f"{name}: --trainable-blocks goes with adapt 'blocks', not {cfg['adapt']!r} (add --adapt blocks)")

def fmt(res):
    s = (f"{res['config']}: {res['images_per_s']:.2f} images/s (median of {res['repeats']}; best {res['images_per_s_best']:.2f}), "
         f"step {res['step_ms']:.1f} ms = data wait {res['data_wait_ms']:.1f} + compute {res['compute_ms']:.1f} ms "
         f"(compute-only {res['compute_images_per_s']:.2f} images/s); batch {res['batch']}, {res['crops']}, "
         f"{res['backbone']} depth {res['depth']} adapt={adapt_text(res)} amp={res['amp']} "
         f"fused AdamW={res['fused_adamw']}, workers {res['workers']}\n"
         f"  FLOPs/image: analytic {res['gflop_per_image_analytic']:.1f} GFLOP"
         + (f", counted {res['gflop_per_image_counted']:.1f} GFLOP (FlopCounterMode, one step)" if res['gflop_per_image_counted'] else '')
         + f"; peak memory: RSS {res['cpu_max_rss_gb']:.2f} GB (largest worker {res['worker_max_rss_gb']:.2f} GB)")
    if 'cuda_max_allocated_gb' in res: s += f", CUDA max allocated {res['cuda_max_allocated_gb']:.2f} GB (reserved {res['cuda_max_reserved_gb']:.2f})"
    if 'peak_tflops' in res:
        s += (f"\n  achieved {res['tflops_analytic']:.3f} TFLOP/s end to end = MFU {100 * res['mfu_analytic']:.1f}% "
              f"(compute only {res['compute_tflops_analytic']:.3f} TFLOP/s = {100 * res['compute_mfu_analytic']:.1f}%) "
              f"of measured {res['peak_dtype']} matmul peak {res['peak_tflops']:.3f} TFLOP/s, analytic FLOPs")
        if 'mfu_counted' in res: s += f"; counted FLOPs: MFU {100 * res['mfu_counted']:.1f}% (compute only {100 * res['compute_mfu_counted']:.1f}%)"
    return s

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--config', default='cpu-small', help='name(s), comma-separated; --list shows them')
    p.add_argument('--list', action='store_true')
    p.add_argument('--images', help='folder of EM images (default: ../shared ISBI 2012 train, else synthetic)')
    p.add_argument('--device', help='override the configuration device (cpu / cuda)')
    for k in ('batch', 'workers', 'warmup', 'steps', 'depth', 'n_local', 'out_dim'):
        p.add_argument(f"--{k.replace('_', '-')}", type=int, help=f'override the configuration {k}')
    p.add_argument('--backbone', help="override the backbone (e.g. dinov2_tiny14)")
    p.add_argument('--adapt', choices=core.ADAPT_MODES,
                   help="override how the backbone adapts: frozen, full, or blocks with --trainable-blocks N "
                        "(lora: refused, no FLOP formula)")
    p.add_argument('--trainable-blocks', type=int, metavar='N',
                   help="with adapt 'blocks': how many of the last blocks train")
    p.add_argument('--train', help=argparse.SUPPRESS)   # the old option: its new spelling, not 'ambiguous option'
    p.add_argument('--repeats', type=int, default=1, help='timed passes (same models); reports the median and best')
    p.add_argument('--compare-lightly', action='store_true', help='also run ../shared/bench/lightly_ref.py, alternating with ours')
    p.add_argument('--train-one-epoch', action='store_true', help='time core.train_one_epoch as a whole instead (cross-check)')
    p.add_argument('--data-only', action='store_true', help='time the loader alone (no model): images/s the CPU pipeline delivers')
    p.add_argument('--no-peak', action='store_true', help='skip the matmul peak measurement')
    p.add_argument('--amp', choices=['core', 'bf16', 'off'], default='core',
                   help="bf16 autocast: 'core' = core's default (core.amp_enabled: CUDA and CPUs with bf16 units); 'bf16' = amp=True; 'off' = amp=False")
    p.add_argument('--epochs', type=int, help='run-* configurations: override the epochs')
    p.add_argument('--run-images', type=int, help='run-* configurations: how many synthetic images (without --images)')
    p.add_argument('--compile', action='store_true', help='torch.compile the backbones (core.compiled_backbones; compiling happens in the warm-up steps)')
    p.add_argument('--compile-mode', choices=['default', 'reduce-overhead', 'max-autotune-no-cudagraphs'],
                   help="with --compile: this torch.compile mode; run-* configurations otherwise take train()'s choice (reduce-overhead, i.e. CUDA graphs, on one GPU), step configurations the default mode")
    p.add_argument('--gpu-crops', choices=['on', 'off'], help="run-* configurations: crops made on the GPU (TrainConfig.gpu_crops) or by the CPU loader workers (core's default)")
    p.add_argument('--loader', choices=['core', 'restart'], default='core',
                   help="run-* configurations: 'core' = train()'s loader; 'restart' = workers restarted each epoch at normal priority (core's CPU loader before low_priority_workers)")
    p.add_argument('--save-latest-seconds', type=float,
                   help="run-* configurations: TrainConfig.save_latest_seconds (0: the rolling checkpoint after every epoch, as before it existed)")
    p.add_argument('--threads', type=int, help='torch.set_num_threads in the main process')
    p.add_argument('--objective', choices=['dino', 'dinov2'], default=None,
                   help="dino: the DINO loss alone (the default of step configurations); dinov2: DINOv2Loss (DINO + iBOT 1.0 + KoLeo 0.1, TrainConfig's default and so of run-* configurations)")
    p.add_argument('--json', help='append one JSON line per configuration to this file')
    a = p.parse_args(argv)
    if a.train is not None:
        p.error("--train is now --adapt (the library's words): --train frozen|full -> --adapt frozen|full, "
                "--train N -> --adapt blocks --trainable-blocks N")
    if a.list:
        for k, v in {**CONFIGS, **RUNS}.items(): print(f"{k:22s} {v}")
        return
    if a.threads: torch.set_num_threads(a.threads)
    results, peaks = [], {}
    for name in a.config.split(','):
        if name in RUNS:      # a whole train() run
            if a.adapt is not None or a.trainable_blocks is not None:
                p.error(f"{name}: --adapt and --trainable-blocks set the step configurations; a run-* configuration "
                        f"takes its TrainConfig adapt from RUNS ({RUNS[name]['config']['adapt']!r})")
            spec = {**RUNS[name], **({'images': a.run_images} if a.run_images else {})}
            overrides = {k: v for k, v in dict(batch_size=a.batch, num_workers=a.workers, backbone=a.backbone, device=a.device,
                                                epochs=a.epochs, save_latest_seconds=a.save_latest_seconds).items() if v is not None}
            if a.amp != 'core': overrides['amp'] = a.amp == 'bf16'
            if a.objective == 'dino': overrides.update(ibot_weight=0.0, koleo_weight=0.0)
            if a.compile: overrides['compile'] = True
            if a.gpu_crops: overrides['gpu_crops'] = a.gpu_crops == 'on'
            device = torch.device(overrides.get('device', spec['config']['device']))
            if device.type == 'cuda' and not torch.cuda.is_available(): raise SystemExit(f"{name} needs CUDA; pass --device cpu to try it here")
            bf16 = core.amp_enabled(device, overrides.get('amp'))
            if device.type == 'cuda' and (device.type, bf16) not in peaks and not a.no_peak:
                tf, how = matmul_peak(device, bf16); peaks[device.type, bf16] = (tf, 'bf16' if bf16 else 'fp32')
                log(f"matmul peak on {device_name(device)}: {tf:.3f} TFLOP/s ({how})")
            log(f"== {name}: {spec} overrides {overrides}")
            results.append(run_train(name, spec, a.images, overrides, peaks.get((device.type, bf16)), a.compile_mode, a.loader))
            if a.json:
                with open(a.json, 'a') as f: f.write(json.dumps(results[-1]) + '\n')
            continue
        if name not in CONFIGS: raise SystemExit(f"unknown configuration {name!r}; one of {', '.join(CONFIGS)}")
        cfg = {**DEFAULTS, **CONFIGS[name]}
        for k in ('batch', 'workers', 'warmup', 'steps', 'depth', 'n_local', 'out_dim', 'backbone', 'device'):
            if getattr(a, k) is not None: cfg[k] = getattr(a, k)
        set_adapt(p, name, cfg, a.adapt, a.trainable_blocks)
        cfg['objective'] = a.objective or 'dino'
        if cfg['device'] == 'cuda' and not torch.cuda.is_available(): raise SystemExit(f"{name} needs CUDA; pass --device cpu to try it here")
        device = torch.device(cfg['device'])
        bf16 = core.amp_enabled(device) if a.amp == 'core' else a.amp == 'bf16'
        if a.data_only:
            paths, source = image_paths(a.images)
            log(f"== {name} (data only): images: {len(paths)} files from {source}")
            results.append(run_data_only(name, cfg, paths))
            if a.json:
                with open(a.json, 'a') as f: f.write(json.dumps(results[-1]) + '\n')
            continue
        if (device.type, bf16) not in peaks and not a.no_peak:
            tf, how = matmul_peak(device, bf16)
            peaks[device.type, bf16] = (tf, 'bf16' if bf16 else 'fp32')
            log(f"matmul peak on {device_name(device)}: {tf:.3f} TFLOP/s ({how})")
        paths, source = image_paths(a.images)
        log(f"== {name}: {cfg}\n   images: {len(paths)} files from {source}")
        lightly = []
        for r in range(a.repeats if a.compare_lightly else 1):
            res = run_ours(name, cfg, device, paths, repeats=1 if a.compare_lightly else a.repeats,
                           peak=peaks.get((device.type, bf16)), via_train_one_epoch=a.train_one_epoch, amp=a.amp, compile=a.compile, compile_mode=a.compile_mode)
            if a.compare_lightly:
                kwargs = {} if cfg['depth'] is None else dict(depth=cfg['depth'])
                bb = core.load_dinov2(cfg['backbone'], pretrained=False, **kwargs)
                images_dir = Path(paths[0]).parent
                rate, cmd = run_lightly(cfg, images_dir, bb)
                lightly.append((res, rate)); del bb
                log(f"  round {r + 1}: ours {res['images_per_s']:.2f} images/s, lightly {rate:.2f} images/s, ratio {res['images_per_s'] / rate:.2f}")
        if a.compare_lightly:
            ours_rates = [x['images_per_s'] for x, _ in lightly]; l_rates = [y for _, y in lightly]
            res = lightly[sorted(range(len(ours_rates)), key=ours_rates.__getitem__)[len(ours_rates) // 2]][0]
            res['worker_max_rss_gb'] = lightly[0][0]['worker_max_rss_gb']   # measured before any lightly child ran
            res.update(repeats=len(ours_rates), images_per_s=statistics.median(ours_rates), images_per_s_best=max(ours_rates),
                       images_per_s_all=ours_rates, lightly_images_per_s=statistics.median(l_rates),
                       lightly_images_per_s_best=max(l_rates), lightly_all=l_rates, lightly_cmd=cmd,
                       ratio_median=statistics.median(ours_rates) / statistics.median(l_rates),
                       ratio_best=max(ours_rates) / max(l_rates))
        log(fmt(res))
        if a.compare_lightly:
            log(f"  lightly_ref.py: {res['lightly_images_per_s']:.2f} images/s (median of {len(l_rates)}; best "
                f"{res['lightly_images_per_s_best']:.2f}); ours / lightly = {res['ratio_median']:.2f}x (medians), "
                f"{res['ratio_best']:.2f}x (bests)\n  lightly command: {cmd}")
        results.append(res)
        if a.json:
            with open(a.json, 'a') as f: f.write(json.dumps(res) + '\n')
    return results

if __name__ == '__main__':
    main()
