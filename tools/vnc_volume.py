#!/usr/bin/env python
"""The VNC sections as volumes (issue 25): ../shared/data/vnc-gerhard2013/stackN/raw/*.tif (20 sections of 1024 x 1024, 8-bit,
4.6 x 4.6 nm pixels, 45-50 nm sections) written as one HDF5 and one OME-Zarr volume, with their voxel size, by
`volumes.write_volume`. The data stay out of the repository (non-commercial licence): the volumes go to --out.

    python tools/vnc_volume.py --out /tmp/vnc            # writes /tmp/vnc/stack2.h5 and /tmp/vnc/stack2.zarr
    python tools/vnc_volume.py --stack stack1 --out /tmp/vnc --chunks 1,256,256
"""
from __future__ import annotations
import argparse, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path: sys.path.insert(0, str(ROOT))   # runs from a checkout without `pip install`

import numpy as np, tifffile
from semisupervised_learning.volumes import EMVolume, natural_key, write_volume

VNC = ROOT.parent / 'shared' / 'data' / 'vnc-gerhard2013'
VOXEL_SIZE = (50.0, 4.6, 4.6)           # (z, y, x) nm: the README's pixel size and upper section thickness

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--stack', default='stack2', help='stack1 (labelled) or stack2 (unlabelled)')
    p.add_argument('--out', type=Path, required=True, help='folder for <stack>.h5 and <stack>.zarr (created; existing volumes are never overwritten)')
    p.add_argument('--chunks', default='1,256,256', help='chunk shape z,y,x')
    args = p.parse_args()
    sections = sorted((VNC / args.stack / 'raw').glob('*.tif'), key=natural_key)
    if not sections: sys.exit(f"No sections under {VNC / args.stack / 'raw'}: is ../shared/data/vnc-gerhard2013 there?")
    volume = np.stack([tifffile.imread(s) for s in sections]).astype(np.uint8)      # 20 MB: big-endian TIFFs to native uint8
    args.out.mkdir(parents=True, exist_ok=True)
    chunks = tuple(int(c) for c in args.chunks.split(','))
    for suffix in ('.h5', '.zarr'):
        path = write_volume(args.out / f'{args.stack}{suffix}', volume, voxel_size=VOXEL_SIZE, chunks=chunks)
        check = EMVolume(path)
        assert np.array_equal(check.read(len(sections) - 1), volume[-1]), path
        print(f"{path}: {check.shape} {check.dtype}, voxel size {check.voxel_size} nm")

if __name__ == '__main__': main()
