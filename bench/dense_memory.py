#!/usr/bin/env python
"""Does `ssl-dino-features` on one very large section stay in bounded memory? (issue 25)

`ssl-dino-features W vol.zarr --out features.zarr` on a single-section Zarr volume of SIZE x SIZE px, in a fresh
process, its peak resident memory measured by /usr/bin/time.
The section is read and computed a row of tiles at a time (`features.dense_feature_rows`), so the peak should follow the
tile row (tile x SIZE px), not the section (SIZE^2 x 4 bytes as float32) nor the features (h x w x D).

    python bench/dense_memory.py                          # a 16384 x 16384 section, the tiny ViT (random weights):
                                                          # about a minute (features 54 s, EPYC-AVX2) plus writing it
    python bench/dense_memory.py --size 8192 --backbone dinov2_vits14
"""
from __future__ import annotations
import argparse, os, re, shutil, subprocess, sys, tempfile, time
from pathlib import Path

from harness import ROOT

import numpy as np
from semisupervised_learning.data import make_synthetic_em
from semisupervised_learning.volumes import write_volume
from semisupervised_learning.core import export_backbone, load_dinov2

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--size', type=int, default=16384, help='section side in px (a multiple of 512)')
    p.add_argument('--backbone', default='dinov2_tiny14'); p.add_argument('--tile', type=int, default=518)
    p.add_argument('--out', type=Path, default=None, help='work folder (default: a temporary one)')
    args = p.parse_args()
    if args.size % 512: p.error(f"--size {args.size}: give a multiple of 512 (the section is a synthetic 512-px tile repeated)")
    if not shutil.which('/usr/bin/time'): p.error("/usr/bin/time (GNU time) measures the peak memory: install it (Debian: apt install time)")
    work = args.out or Path(tempfile.mkdtemp(prefix='dense-memory-'))
    section = np.tile(make_synthetic_em(1, 512, seed=1)[0], (args.size // 512, args.size // 512))[None]
    volume = write_volume(work / 'section.zarr', section, voxel_size=(50, 4, 4), chunks=(1, 512, 512))
    del section
    weights = export_backbone(load_dinov2(args.backbone, pretrained=False), work / 'backbone.pth')
    command = ['/usr/bin/time', '-v', sys.executable, '-c', 'import sys; from semisupervised_learning.cli import features_cli; features_cli(sys.argv[1:])',
               str(weights), volume, '--out', str(work / 'features.zarr'), '--device', 'cpu', '--tile', str(args.tile), '--no-progress']
    start = time.perf_counter()
    run = subprocess.run(command, capture_output=True, text=True, env={**os.environ, 'PYTHONPATH': str(ROOT)})   # this checkout's code, installed or not
    seconds = time.perf_counter() - start
    if run.returncode: sys.exit(run.stderr[-3000:])
    peak = int(re.search(r'Maximum resident set size \(kbytes\): (\d+)', run.stderr).group(1)) / 1024
    print(run.stdout.strip())
    grid = -(-args.size // 14)
    print(f"{args.size} x {args.size} section ({args.size ** 2 * 4 / 2 ** 30:.2f} GiB as float32; features {grid} x {grid} x D) -> "
          f"ssl-dino-features {args.backbone} tile {args.tile}: {seconds:.0f} s, peak resident memory {peak:.0f} MB")

if __name__ == '__main__': main()
