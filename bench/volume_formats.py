#!/usr/bin/env python
"""The README's "Your volume" commands, run (issue 25): a small synthetic volume written in every format `EMVolume` reads
(HDF5, HDF5 with a dataset path, OME-Zarr and one of its levels, N5, MRC, TIFF stack), then for each
`ssl-dino-train VOLUME` (tiny backbone from scratch, one short epoch on the CPU) and
`ssl-dino-features adapted_backbone.pth VOLUME --out features.zarr`; prints each command's exit code, time and key line.

    python bench/volume_formats.py                # in a temporary folder, deleted afterwards
"""
from __future__ import annotations
import os, shutil, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path: sys.path.insert(0, str(ROOT))   # runs from a checkout without `pip install`

import numpy as np
from semisupervised_learning.data import make_synthetic_em, write_volume

def run(command:list) -> tuple[int, float, str]:
    start = time.perf_counter()
    r = subprocess.run(command, capture_output=True, text=True, env={**os.environ, 'PYTHONWARNINGS': 'ignore'})
    lines = [l for l in (r.stdout + r.stderr).splitlines() if l.strip()]
    key = next((l for l in lines if l.startswith(('Volume ', 'Wrote ', 'error:'))), lines[-1] if lines else '')
    return r.returncode, time.perf_counter() - start, key

def main():
    tmp = Path(tempfile.mkdtemp())
    voxels = np.stack(make_synthetic_em(8, 256, seed=3)).astype(np.uint16) * 16 + 500           # 8 sections of 256 x 256, 12-bit
    paths = dict(hdf5=write_volume(tmp / 'vol.h5', voxels, voxel_size=(40, 4, 4)).split(':')[0],
                 hdf5_dataset=write_volume(tmp / 'cremi.h5:/volumes/raw', voxels, voxel_size=(40, 4, 4)),
                 ome_zarr=write_volume(tmp / 'vol.zarr', voxels, voxel_size=(8, 8, 8), levels=2),
                 ome_zarr_level=f"{tmp / 'vol.zarr'}/1", n5=write_volume(tmp / 'vol.n5', voxels, voxel_size=(8, 8, 8)),
                 mrc=write_volume(tmp / 'tomogram.mrc', voxels, voxel_size=(8, 8, 8)), tiff=write_volume(tmp / 'stack.tif', voxels))
    train = ['--backbone', 'dinov2_tiny14', '--from-scratch', '--epochs', '1', '--batch-size', '4', '--global-size', '112', '--local-size', '56',
             '--device', 'cpu', '--no-progress']
    try:
        for name, path in paths.items():
            out = tmp / f'run_{name}'
            code, seconds, key = run(['ssl-dino-train', path, *train, '--out', str(out)])
            print(f"{name:15s} ssl-dino-train    exit {code} {seconds:5.1f} s  {key[:150]}")
            code, seconds, key = run(['ssl-dino-features', str(out / 'adapted_backbone.pth'), path, '--out', str(tmp / f'{name}.zarr'),
                                      '--tile', '224', '--overlap', '56', '--device', 'cpu', '--no-progress'])
            print(f"{name:15s} ssl-dino-features exit {code} {seconds:5.1f} s  {key[:150]}")
        iso = write_volume(tmp / 'fibsem.zarr', voxels[:, :64, :64].repeat(8, axis=0), voxel_size=(8, 8, 8))
        code, seconds, key = run(['ssl-dino-train', iso, *train, '--planes', 'xy,xz,yz', '--out', str(tmp / 'run_iso')])
        print(f"{'isotropic':15s} ssl-dino-train --planes xy,xz,yz exit {code} {seconds:5.1f} s  {key[:150]}")
    finally: shutil.rmtree(tmp)

if __name__ == '__main__': main()
