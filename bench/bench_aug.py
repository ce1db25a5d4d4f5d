#!/usr/bin/env python
"""How fast does one loader worker make multi-crops? `core.MultiCropDataset` against lightly's `DINOTransform`.

One process, `torch.set_num_threads(1)` (what a DataLoader worker gets), 2 global 224 px + 8 local 98 px crops
of 512x512 EM images (ISBI 2012 train from ../shared when present, else synthetic PNGs from core). Ours is timed
two ways: `ds[i]` as a loader worker calls it (decodes the file inside `__getitem__`), and crops only
(every image decoded once with `ds.load_image`, then `ds[i]` with `load_image` answering from that cache, so
the exact core crop + augment code runs) -- the fair match for ../shared/bench/lightly_aug_ref.py, which preloads
PIL images. lightly's reference runs as a subprocess on the same files, alternating with ours.

    python bench/bench_aug.py --n 60 --repeats 3      # about a minute (an estimate: not recorded)
"""
from __future__ import annotations
import argparse, re, statistics, subprocess, sys, tempfile, time
from pathlib import Path

from harness import ISBI, SHARED

import torch
from semisupervised_learning import core

LIGHTLY_AUG = SHARED / 'bench' / 'lightly_aug_ref.py'

def images_folder(images):
    if images: return Path(images)
    if (ISBI / 'train' / 'images').is_dir(): return ISBI / 'train' / 'images'
    folder = Path(tempfile.mkdtemp(prefix='ssl_bench_aug_'))
    core.write_synthetic_em(folder, n=30, size=512)
    return folder

def ours(folder, n, n_local=8, local_size=98, crops_only=False):
    # crops only: every image decoded once into the dataset's own cache; else no cache, a decode per sample as a worker
    # meets a folder too large to keep
    ds = core.MultiCropDataset(sorted(folder.glob('*.png')) or folder, n_local_crops=n_local, local_size=local_size, seed=0,
                               image_cache_mb=1e6 if crops_only else 0)
    for i in range(len(ds) if crops_only else 3): ds[i]
    t = time.perf_counter()
    for i in range(n): ds[i % len(ds)]
    return n / (time.perf_counter() - t)

def lightly(folder, n, n_local=8, local_size=98):
    cmd = [sys.executable, str(LIGHTLY_AUG), '--images', str(folder), '--n', str(n), '--n-local', str(n_local),
           '--local-size', str(local_size)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    m = re.search(r'lightly aug images/s:\s*([0-9.]+)', out.stdout)
    if not m: raise RuntimeError(f"lightly_aug_ref.py failed:\n{out.stdout}\n{out.stderr[-3000:]}")
    return float(m.group(1)), ' '.join(cmd)

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--images', help='folder of PNG EM images (default: ../shared ISBI 2012 train, else synthetic)')
    p.add_argument('--n', type=int, default=60, help='timed samples per measurement')
    p.add_argument('--n-local', type=int, default=8); p.add_argument('--local-size', type=int, default=98)
    p.add_argument('--repeats', type=int, default=3, help='alternating rounds; medians and bests are reported')
    p.add_argument('--no-lightly', action='store_true')
    a = p.parse_args(argv)
    torch.manual_seed(0); torch.set_num_threads(1)
    folder = images_folder(a.images)
    print(f"images: {folder}; 2x224 + {a.n_local}x{a.local_size} crops; one process, 1 torch thread; {a.n} samples per measurement", flush=True)
    rows = {'ours (decode + crops)': [], 'ours (crops only)': [], 'lightly (preloaded PIL)': []}
    cmd = None
    for r in range(a.repeats):
        rows['ours (decode + crops)'].append(ours(folder, a.n, a.n_local, a.local_size))
        rows['ours (crops only)'].append(ours(folder, a.n, a.n_local, a.local_size, crops_only=True))
        if not a.no_lightly:
            rate, cmd = lightly(folder, a.n, a.n_local, a.local_size); rows['lightly (preloaded PIL)'].append(rate)
        print(f"  round {r + 1}: " + ', '.join(f"{k} {v[-1]:.2f}" for k, v in rows.items() if v) + " images/s", flush=True)
    med = {k: statistics.median(v) for k, v in rows.items() if v}
    best = {k: max(v) for k, v in rows.items() if v}
    for k in med: print(f"{k}: {med[k]:.2f} images/s per worker (median of {len(rows[k])}; best {best[k]:.2f})")
    if not a.no_lightly:
        L = 'lightly (preloaded PIL)'
        for k in ('ours (crops only)', 'ours (decode + crops)'):
            print(f"ratio {k} / lightly: {med[k] / med[L]:.2f}x (medians), {best[k] / best[L]:.2f}x (bests)")
        print(f"lightly command: {cmd}")
    return med

if __name__ == '__main__':
    main()
