"""What the bench scripts share (a module, not a script): this checkout's package on the path, logging, the data sets
in ../shared, the training recipes, the probe run with a named preset (`probe.PROBE_PRESETS`), the JSON lines the
scripts write and read, their common options, and the summary of runs that differ only in their training seed.

    from harness import ROOT, log, probe_set        # first in a bench script: it puts this checkout on sys.path
"""
from __future__ import annotations
import argparse, json, sys
from dataclasses import fields
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path: sys.path.insert(0, str(ROOT))   # runs from a checkout without `pip install`

import numpy as np
from semisupervised_learning import core
from semisupervised_learning.health import beyond_noise  # noqa: F401   the scripts take the rule, the presets and
from semisupervised_learning.probe import PROBE_PRESETS, ProbeSettings, load_labelled, text_table  # noqa: F401   the table here
from semisupervised_learning.evaluate import compare_backbones

def log(*a): print(*a, flush=True)

# The data (../shared/data, outside the repository: see each folder's README)
SHARED = ROOT.parent / 'shared'
VNC, ISBI = SHARED / 'data' / 'vnc-gerhard2013', SHARED / 'data' / 'isbi2012'
VNC_UNLABELED = VNC / 'stack2' / 'raw'               # 20 unlabelled sections, for self-supervision
VNC_IMAGES = VNC / 'stack1' / 'raw'                  # 20 labelled sections
# labelled sets by name: images, masks, class names (one per mask value, in increasing order), the class reported
LABELLED_SETS = {
    'vnc-mitochondria': (VNC_IMAGES, VNC / 'stack1' / 'masks' / 'mitochondria', ['other', 'mitochondria'],
                         'mitochondria'),
    'vnc-membrane': (VNC_IMAGES, VNC / 'stack1' / 'masks' / 'membrane', ['other', 'membrane'], 'membrane'),
    'isbi-membrane': (ISBI / 'train' / 'images', ISBI / 'train' / 'labels', ['membrane', 'interior'], 'membrane')}
# bench/pretrained_start.py's labelled sets, named as in its JSON lines: the target's (adapted on), the source's
STUDY_TARGET_SETS = [('VNC mitochondria', *LABELLED_SETS['vnc-mitochondria'][:2]),
                     ('VNC membranes', *LABELLED_SETS['vnc-membrane'][:2])]
STUDY_SOURCE_SETS = [('ISBI membranes', *LABELLED_SETS['isbi-membrane'][:2])]

# The recipes: TrainConfig overrides (see TrainConfig in semisupervised_learning/config.py), one place to edit.
FROM_SCRATCH = {                                     # bench/adapt.py --config NAME
    # the tiny 2-block ViT from random weights, trained whole with core's RANDOM_INIT_RECIPE (iBOT + KoLeo without the
    # DINO CLS term, sharp teacher, no local crops, every layer at the full lr). 20 sections x 4 samples / batch 8 = 10
    # steps per epoch, 400 epochs = 4000 steps: 9-15 minutes on the shared 2-core CPU, plus the pictures and the probe
    'cpu': dict(backbone='dinov2_tiny14', pretrained=False, **core.RANDOM_INIT_RECIPE, head_warmup_epochs=5,   # lr 5e-4
                epochs=400, warmup_epochs=10, batch_size=8, momentum_teacher=0.99, center_momentum=0.9,
                out_dim=256, hidden_dim=512, bottleneck_dim=128, global_size=224, samples_per_image=4,
                global_scale=(0.14, 0.35), num_workers=2, save_every=100, log_every=20, device='cpu'),
    # ViT-S/14 from random weights with the same recipe (with --weights: the pretrained-start defaults, see adapt.py).
    # 20 sections x 16 samples / batch 64 = 5 steps per epoch, 600 epochs = 3000 steps: estimated (not yet measured)
    # at 4-5 minutes on an H100 machine, where 8 loader workers (~800 images/s) rather than the GPU set the pace
    'gpu-vits': dict(backbone='dinov2_vits14', pretrained=False, **{**core.RANDOM_INIT_RECIPE, 'lr': 1e-3},
                     head_warmup_epochs=5, epochs=600, warmup_epochs=10, batch_size=64, momentum_teacher=0.99,
                     center_momentum=0.9, out_dim=256, hidden_dim=2048, bottleneck_dim=256, global_size=224,
                     samples_per_image=16, global_scale=(0.14, 0.35), num_workers=8, save_every=200, log_every=20,
                     device='cuda'),
}
BUDGET_MINUTES = {'cpu': 20, 'gpu-vits': 5}          # what each recipe must fit in (reported, not enforced)
# bench/adapt.py --quick: on top of the chosen config, a run that only checks the path (synthetic data, a minute)
QUICK_RUN = dict(backbone='dinov2_tiny14', epochs=3, warmup_epochs=1, head_warmup_epochs=1, batch_size=8, lr=1e-3,
                 out_dim=64, hidden_dim=128, bottleneck_dim=64, global_size=112, local_size=56, n_local_crops=2,
                 num_workers=0, save_every=3, log_every=2, device='cpu', amp=None, compile=False)
# bench/pretrained_start.py, stage 1: the cpu recipe on 60 sections x 2 samples / batch 8 = 15 steps per epoch
PRETRAIN = {**FROM_SCRATCH['cpu'], 'epochs': 80, 'warmup_epochs': 5, 'samples_per_image': 2, 'save_every': 1000}
# stage 2: the pretrained-start defaults (TrainConfig's), for the tiny ViT on a CPU: 20 x 4 / 8 = 10 steps an epoch
PRETRAINED_ADAPT = dict(backbone='dinov2_tiny14', epochs=30, head_warmup_epochs=5, warmup_epochs=3, batch_size=8,
                        lr=1e-4, n_local_crops=4, samples_per_image=4, out_dim=256, hidden_dim=512, bottleneck_dim=128,
                        num_workers=2, save_every=1000, log_every=20, device='cpu')
ADAPT_MODES = {'frozen': dict(adapt='frozen'), 'lora': dict(adapt='lora'),
               'last block': dict(adapt='blocks', trainable_blocks=1), 'full': dict(adapt='full')}
PRETRAINED_QUICK_RUN = dict(epochs=3, head_warmup_epochs=1, warmup_epochs=1, global_size=112, local_size=56,
                            samples_per_image=1, num_workers=0)

def probe_set(backbones:dict, # label -> spec (`evaluate.resolve_backbone`); gaps are measured from the first
              images, masks, # a labelled set
              settings:ProbeSettings, # one of `PROBE_PRESETS`: the split, fits and resamples
              scale:float|None=None, # whole sections at this working scale by tiles; None: resized to settings.size
              **kwargs) -> tuple:
    "`compare_backbones` on one labelled set with a preset: the labelled images and the comparison."
    data = load_labelled(images, masks, size=settings.size, scale=scale)
    train, test = settings.split(data)
    return data, compare_backbones(backbones, train, test, progress=False, seeds=settings.seeds,
                                   n_bootstrap=settings.n_bootstrap, **kwargs)

def over_seeds(gaps:list) -> dict:
    """Runs that differ only in their training seed, each `(gain, its probe spread)`: the mean gain, the seeds' standard
    deviation (the training noise that the probe's spread leaves out), how many lost or gained beyond noise, and whether
    every run was beyond noise on the same side (`consistent`)."""
    gains, beyond = [g for g, _ in gaps], [beyond_noise(g, sd) for g, sd in gaps]
    return dict(n=len(gaps), mean=float(np.mean(gains)), sd=float(np.std(gains, ddof=1)) if len(gaps) > 1 else None,
                lost=sum(b and g < 0 for g, b in zip(gains, beyond)),
                gained=sum(b and g > 0 for g, b in zip(gains, beyond)),
                consistent=all(beyond) and len({g > 0 for g in gains}) == 1)

# The JSON lines: one object per line with at least these keys, marked with the script that wrote it ('bench')
RECORD_KEYS = {'bench/adapt.py': ('config', 'quick', 'overrides', 'gain', 'gain_std'),    # a run: a config and a seed
               'bench/pretrained_start.py': ('start', 'runs', 'scores'),                  # a study: its runs and scores
               'bench/label_free.py': ('set', 'backbone', 'iou_change')}                  # an adapted backbone on a set

def append_json_line(path, script:str, record:dict):
    "Append `record` to `path` as one JSON line, marked as written by `script` (a key of RECORD_KEYS)."
    with open(path, 'a') as f: f.write(json.dumps({'bench': script, **record}) + '\n')

def read_json_lines(files:list, script:str) -> list[dict]:
    "The records `script` wrote in JSON-lines files, each checked: another script's line is refused with its place."
    records = []
    for f in map(Path, files):
        for n, line in enumerate(f.read_text().splitlines(), 1):
            if not line.strip(): continue
            try: record = json.loads(line)
            except json.JSONDecodeError as e: raise ValueError(f"{f}:{n}: not JSON ({e.msg})") from None
            missing = [k for k in RECORD_KEYS[script] if k not in record] if isinstance(record, dict) else ['object']
            if missing or record.get('bench', script) != script:   # lines from before the mark: known by their keys
                raise ValueError(f"{f}:{n}: not a line written by {script} --json "
                                 f"({'no ' + ', '.join(missing) if missing else 'written by ' + record['bench']})")
            records.append(record)
    return records

# Options several scripts take
def setting(text:str) -> tuple:
    "A `FIELD=VALUE` option as (field, value): numbers, true/false and null as JSON, anything else as a string."
    field, sep, value = text.partition('=')
    if not sep or field not in {f.name for f in fields(core.TrainConfig)}:
        raise argparse.ArgumentTypeError(f"{text!r}: expected FIELD=VALUE with a TrainConfig field "
                                         "(see semisupervised_learning/config.py)")
    try: return field, json.loads(value)
    except json.JSONDecodeError: return field, value

def seed_list(text:str) -> list[int]:
    "--seeds: comma-separated whole numbers."
    try: return [int(x) for x in text.split(',')]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give whole numbers separated by commas, e.g. 0,1,2") from None
