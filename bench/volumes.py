#!/usr/bin/env python
"""How fast are training crops from volumes, and what do dense features of a large section cost? (issue 25)

On the CPU: training crops per second from a Zarr volume, an HDF5 volume and the same sections as a PNG folder (the
same crops: same seeds, same section sizes), with the process's peak memory; then dense features of one large section
at native scale (`features.dense_features`), time and peak memory.

    python bench/volumes.py      # a synthetic 16 x 768 x 768 volume, a 4096-px section, ViT-S/14 (random init):
                                 # several minutes (the dense part 345 s under load, EPYC-AVX2)
    python bench/volumes.py --samples 32 --dense-size 2048 --backbone dinov2_tiny14
"""
from __future__ import annotations
import argparse, resource, tempfile, time
from pathlib import Path

import harness  # noqa: F401 (this checkout's package on sys.path)

import numpy as np, torch
from PIL import Image
from semisupervised_learning.crops import MultiCropDataset
from semisupervised_learning.data import make_synthetic_em
from semisupervised_learning.volumes import write_volume
from semisupervised_learning.features import dense_features
from semisupervised_learning.model import load_dinov2

def peak_mb() -> float: return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

def crops_per_second(source, samples:int) -> tuple[float, list]:
    "Crops per second of one process reading `source` afresh every sample (no cache, as for a dataset larger than memory), and sample 0's crops."
    ds = MultiCropDataset(source, seed=0, image_cache_mb=0)
    first = ds[0]
    start = time.perf_counter()
    for i in range(samples): ds[i % len(ds)]
    return samples * (ds.n_global_crops + ds.n_local_crops) / (time.perf_counter() - start), first

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--sections', type=int, default=16)
    p.add_argument('--size', type=int, default=768, help='section side; at most the volume window (896 at 224) so every source gives the same crops')
    p.add_argument('--samples', type=int, default=48, help='multi-crop samples timed per source')
    p.add_argument('--dense-size', type=int, default=4096, help='0: no dense features'); p.add_argument('--backbone', default='dinov2_vits14')
    p.add_argument('--tile', type=int, default=518); p.add_argument('--overlap', type=int, default=126)
    args = p.parse_args()
    torch.set_num_threads(2)
    tmp = Path(tempfile.mkdtemp())
    images = make_synthetic_em(4, args.size, seed=0)
    volume = np.stack([images[z % 4] for z in range(args.sections)])
    pngs = tmp / 'pngs'; pngs.mkdir()
    for z, section in enumerate(volume): Image.fromarray(section).save(pngs / f'{z:04d}.png')
    sources = dict(png=pngs, zarr=write_volume(tmp / 'vol.zarr', volume, (50, 5, 5), chunks=(1, 256, 256)),
                   hdf5=write_volume(tmp / 'vol.h5', volume, (50, 5, 5), chunks=(1, 256, 256)))
    del volume
    print(f"{args.sections} sections of {args.size} x {args.size} px (uint8), chunks 1 x 256 x 256; {args.samples} samples of 10 crops each, one process")
    reference = None
    for name, source in [*sources.items(), ('png', pngs)]:      # the PNGs again last: the first source also warms the process up
        rate, crops = crops_per_second(source, args.samples)
        reference = crops if reference is None else reference
        same = all(torch.equal(a, b) for a, b in zip(crops, reference))
        print(f"  {name:5s} {rate:7.1f} crops/s   peak memory so far {peak_mb():6.0f} MB   {'the same crops as from the PNGs' if same else 'CROPS DIFFER'}")
    if not args.dense_size: return
    backbone = load_dinov2(args.backbone, pretrained=False).eval()
    section = np.tile(make_synthetic_em(1, 512, seed=1)[0], (args.dense_size // 512, args.dense_size // 512)).astype(np.float32) / 255
    before = peak_mb(); start = time.perf_counter()
    features = dense_features(backbone, section, tile=args.tile, overlap=args.overlap, device='cpu', amp=False)
    seconds = time.perf_counter() - start
    print(f"dense features of a {args.dense_size} x {args.dense_size} section ({args.backbone}, float32, tile {args.tile}, overlap {args.overlap}): "
          f"{tuple(features.shape)} in {seconds:.1f} s; peak memory {peak_mb():.0f} MB (before: {before:.0f} MB)")

if __name__ == '__main__': main()
