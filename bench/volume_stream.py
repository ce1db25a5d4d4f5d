#!/usr/bin/env python
"""Does training stream from a chunked volume larger than the machine's memory, in bounded memory? (issue 25)

Writes a synthetic-EM OME-Zarr of `--sections` x `--side` x `--side` uint8 voxels (128 x 16384 x 16384 = 34 GB
uncompressed, about 27 GB with Zarr's default zstd) slab by slab, then streams `MultiCropDataset` + `create_dataloader` crops from it for a fixed number of batches,
and optionally runs `ssl-dino-train` on it for a few hundred steps, each with the peak memory of its whole process tree
(the process and its loader workers: PSS summed, which counts shared pages once, and RSS summed, which counts them in
every process; sampled every 0.1 s).

    python bench/volume_stream.py --out /tmp/big.zarr                 # write (if absent), stream 60 batches of 32
    python bench/volume_stream.py --out /tmp/big.zarr --train-steps 200 --delete
    python bench/volume_stream.py --out /tmp/big.zarr --batches 20 --train-steps 48
                                # about 17 min the first time (588 s to write 34 GB, 381 s of training, EPYC-AVX2);
                                # needs about 40 GB free on disk
"""
from __future__ import annotations
import argparse, os, shutil, subprocess, sys, threading, time
from pathlib import Path

import harness  # noqa: F401 (this checkout's package on sys.path)

import numpy as np

def tree_memory_mb(pid:int) -> tuple[float, float]:
    "Memory of process `pid` and all its descendants (MB), from /proc: RSS summed (counts shared pages once per process) and PSS summed (shares them)."
    children = {}
    for entry in os.listdir('/proc'):
        if not entry.isdigit(): continue
        try: ppid = int(Path(f'/proc/{entry}/stat').read_text().rsplit(')', 1)[1].split()[1])
        except (OSError, IndexError, ValueError): continue
        children.setdefault(ppid, []).append(int(entry))
    rss = pss = 0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            fields = {l.split(':')[0]: int(l.split()[1]) for l in Path(f'/proc/{p}/smaps_rollup').read_text().splitlines()[1:]}
            rss, pss = rss + fields['Rss'], pss + fields['Pss']
        except (OSError, KeyError, ValueError, IndexError): pass
        todo += children.get(p, [])
    return rss / 1024, pss / 1024

class PeakMemory:
    "Samples `tree_memory_mb(pid)` every `every` seconds in a thread while active; `.rss` and `.pss`: the peaks in MB."
    def __init__(self, pid:int|None=None, every:float=0.1): self.pid, self.every, self.rss, self.pss = pid or os.getpid(), every, 0.0, 0.0
    def __enter__(self):
        self._stop = threading.Event()
        def run():
            while not self._stop.is_set():
                rss, pss = tree_memory_mb(self.pid)
                self.rss, self.pss = max(self.rss, rss), max(self.pss, pss); time.sleep(self.every)
        self._thread = threading.Thread(target=run, daemon=True); self._thread.start(); return self
    def __exit__(self, *exc): self._stop.set(); self._thread.join()

class SyntheticEMVolume:
    "A (sections, side, side) uint8 volume made on demand from 8 synthetic 1024-px EM tiles, each section a fresh random tiling (tile, rotation)."
    def __init__(self, sections:int, side:int, seed:int=0):
        from semisupervised_learning.data import make_synthetic_em
        self.tiles = np.stack(make_synthetic_em(8, 1024, seed=seed))
        self.shape, self.dtype, self.seed = (sections, side, side), np.dtype(np.uint8), seed
    def section(self, z:int) -> np.ndarray:
        rng, n = np.random.default_rng([self.seed, z]), -(-self.shape[1] // 1024)
        out = np.empty((n * 1024, n * 1024), np.uint8)
        for i in range(n):
            for j in range(n): out[i * 1024:(i + 1) * 1024, j * 1024:(j + 1) * 1024] = np.rot90(self.tiles[rng.integers(8)], rng.integers(4))
        return out[:self.shape[1], :self.shape[2]]
    def __getitem__(self, z:slice) -> np.ndarray: return np.stack([self.section(k) for k in range(*z.indices(self.shape[0]))])

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--out', type=Path, default=Path('/tmp/big_synthetic_em.zarr'), help='the volume (written when absent)')
    p.add_argument('--sections', type=int, default=128); p.add_argument('--side', type=int, default=16384)
    p.add_argument('--chunks', default='1,512,512')
    p.add_argument('--batches', type=int, default=60, help='loader batches timed (after 3 warm-up batches)')
    p.add_argument('--batch-size', type=int, default=32); p.add_argument('--num-workers', type=int, default=2)
    p.add_argument('--scale', type=float, default=None, help='MultiCropDataset(scale=): None, whole-window crops')
    p.add_argument('--train-steps', type=int, default=0, help='then ssl-dino-train for about this many steps (tiny backbone, from scratch)')
    p.add_argument('--delete', action='store_true', help='delete the volume at the end')
    args = p.parse_args()
    from semisupervised_learning.volumes import EMVolume, write_volume
    from semisupervised_learning.crops import MultiCropDataset
    from semisupervised_learning.loader import create_dataloader
    source = SyntheticEMVolume(args.sections, args.side)
    raw_gb = np.prod(source.shape) / 1e9
    if not args.out.exists():
        free = shutil.disk_usage(args.out.parent).free / 1e9
        if free < raw_gb + 5: sys.exit(f"{args.out.parent} has {free:.0f} GB free; the volume needs up to {raw_gb:.0f} GB: choose another --out or fewer --sections.")
        start = time.perf_counter()
        write_volume(args.out, source, chunks=tuple(int(c) for c in args.chunks.split(',')), voxel_size=(8, 8, 8))
        print(f"wrote {args.out}: {source.shape} uint8, {raw_gb:.2f} GB uncompressed in {time.perf_counter() - start:.0f} s")
    on_disk = sum(f.stat().st_size for f in args.out.rglob('*') if f.is_file()) / 1e9
    memory = os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 1e9
    volume = EMVolume(args.out)
    print(f"{volume.name}: {volume.shape} {volume.dtype}, chunks {volume.array.chunks}, {raw_gb:.2f} GB uncompressed, {on_disk:.2f} GB on disk; "
          f"machine memory {memory:.1f} GB")
    samples = -(-(args.batches + 3) * args.batch_size // args.sections)          # enough multi-crop samples per section for the batches
    dataset = MultiCropDataset(args.out, seed=0, scale=args.scale, samples_per_image=samples)
    loader = create_dataloader(dataset, args.batch_size, num_workers=args.num_workers, seed=0)
    crops = dataset.n_global_crops + dataset.n_local_crops
    with PeakMemory() as peak:
        batches = iter(loader)
        for _ in range(3): next(batches)                 # workers started, first chunks read
        start = time.perf_counter()
        for _ in range(args.batches): next(batches)
        seconds = time.perf_counter() - start
    print(f"loader: {args.batches} batches of {args.batch_size} x {crops} crops ({args.num_workers} workers, windows of {dataset.volume_window} px, "
          f"scale {args.scale}): {args.batches * args.batch_size * crops / seconds:.0f} crops/s, {args.batches * args.batch_size / seconds:.1f} samples/s; "
          f"peak memory of the process tree {peak.pss:.0f} MB PSS ({peak.rss:.0f} MB RSS summed); blank crops redrawn {dataset.n_blank_redrawn}")
    del batches, loader
    if args.train_steps:
        batch = 16
        samples = max(1, round(args.train_steps * batch / args.sections))
        run = args.out.parent / 'volume_stream_run'
        command = ['ssl-dino-train', str(args.out), '--backbone', 'dinov2_tiny14', '--from-scratch', '--epochs', '1', '--batch-size', str(batch),
                   '--samples-per-image', str(samples), '--device', 'cpu', '--no-progress', '--out', str(run)]
        start = time.perf_counter()
        child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, 'PYTHONWARNINGS': 'ignore'})
        with PeakMemory(child.pid) as peak: output = child.communicate()[0]
        print(f"ssl-dino-train, {args.sections * samples // batch} steps of batch {batch}: exit {child.returncode} in {time.perf_counter() - start:.0f} s; "
              f"peak memory of the process tree {peak.pss:.0f} MB PSS ({peak.rss:.0f} MB RSS summed)\n  " + '\n  '.join(output.strip().splitlines()[:3] + ['...'] + output.strip().splitlines()[-4:]))
        shutil.rmtree(run, ignore_errors=True)
    if args.delete: shutil.rmtree(args.out); print(f"deleted {args.out}")

if __name__ == '__main__': main()
