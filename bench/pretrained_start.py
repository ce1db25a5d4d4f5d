#!/usr/bin/env python
"""From a pretrained start: which adaptation mode gains on new EM without forgetting the old? (issue 26)

No hub weights reach these machines, so the study makes its own pretrained start, as a user's hub weights would be:

1. pretrain: the tiny ViT from random weights with the from-scratch recipe (`core.RANDOM_INIT_RECIPE`) on the source set,
   the 60 ISBI 2012 sections (train and test images, labels unused), saved as a weights file (`pretrain/adapted_backbone.pth`
   in the study folder, reused by later studies with --start FILE);
2. adapt: that file on the target set, the 20 unlabelled VNC sections of stack 2, with the pretrained-start defaults
   (TrainConfig's own: head warm-up, DINO + iBOT + KoLeo), scaled to a tiny ViT on a CPU, once per mode (frozen, lora,
   the last block, full) and Gram anchor (gram_weight 0 and 1; frozen has nothing to anchor);
3. probe: the start and every adapted backbone with the project's dense probe (`evaluate.compare_backbones`, paired
   spreads) on the target's labelled sets (VNC stack 1 mitochondria and membranes) and on the source's (ISBI membranes):
   the gain on the target and the change on the source (forgetting), each with its spread.

    python bench/pretrained_start.py                      # ~30 minutes on a 2-core CPU (also: python bench/adapt.py --config cpu-pretrained)
    python bench/pretrained_start.py --start runs/pretrained-start-TIME/pretrain/adapted_backbone.pth --modes lora,full
    python bench/pretrained_start.py --source synthetic   # a start pretrained on synthetic EM instead of real EM
    python bench/pretrained_start.py --start FILE --modes full --gram 1 --seeds 0,1,2   # each run trained with 3 seeds: the runs' own noise
    python bench/pretrained_start.py --quick              # the whole path on synthetic data, a few minutes
"""
from __future__ import annotations
import argparse, tempfile, time
from dataclasses import asdict
from pathlib import Path

from harness import (ADAPT_MODES, ISBI, PRETRAIN, PRETRAINED_ADAPT, PRETRAINED_QUICK_RUN, PROBE_PRESETS, ROOT,
                     STUDY_SOURCE_SETS, STUDY_TARGET_SETS, VNC_UNLABELED, append_json_line, beyond_noise, log,
                     over_seeds, probe_set, seed_list, setting, text_table)
import numpy as np
import torch
from semisupervised_learning import core
from semisupervised_learning.probe import write_synthetic_labelled

SOURCE_UNLABELED = [ISBI / 'train' / 'images', ISBI / 'test' / 'images']    # the 60 ISBI sections, labels unused
TARGET_UNLABELED = VNC_UNLABELED
TARGET_SETS, SOURCE_SETS = STUDY_TARGET_SETS, STUDY_SOURCE_SETS    # (name, images, masks); --quick: synthetic ones


def gathered(folders:list, into:Path) -> Path:
    "One folder of links to the sections of several folders (names prefixed by their folder's parent: no collisions)."
    into.mkdir(parents=True, exist_ok=True)
    for folder in folders:
        for path in core.find_em_images(folder):
            link = into / f'{folder.parent.name}_{path.name}'
            if not link.exists(): link.symlink_to(path.resolve())
    return into

def pretrain(out:Path, quick:bool) -> Path:
    "The pretrained start: the from-scratch recipe on the source sections, exported as a weights file."
    data = gathered(SOURCE_UNLABELED, out / 'source_sections') if not quick else SOURCE_UNLABELED[0]
    config = core.TrainConfig(**{**PRETRAIN, **(PRETRAINED_QUICK_RUN if quick else {}), 'data': str(data),
                                 'out': str(out / 'pretrain'), 'progress': False})
    t0 = time.time()
    result = core.train(config)
    log(f"pretrained on {data} in {(time.time() - t0) / 60:.1f} min: {result['outputs']['backbone']}")
    return result['outputs']['backbone']

def adapt(start:Path, mode:str, gram_weight:float, out:Path, quick:bool, overrides:dict) -> dict:
    "One adaptation run from the start file; returns its exported backbone and wall time."
    config = core.TrainConfig(**{**PRETRAINED_ADAPT, **ADAPT_MODES[mode], 'gram_weight': gram_weight,
                                 **(PRETRAINED_QUICK_RUN if quick else {}), **overrides, 'weights': str(start),
                                 'data': str(TARGET_UNLABELED), 'out': str(out), 'progress': False})
    t0 = time.time()
    result = core.train(config)
    return dict(backbone=result['outputs']['backbone'], train_s=time.time() - t0, out=str(out))

def probe_sets(backbones:dict, sets:list, quick:bool, scale:float|None=None) -> dict:
    "Rows of `compare_backbones` per labelled set (resized, or whole sections at `scale`): gaps to the start."
    out, settings = {}, PROBE_PRESETS['pretrained-start-quick' if quick else 'pretrained-start']
    for name, images, masks in sets:
        _, comparison = probe_set(backbones, images, masks, settings, scale, device='cpu', n_show=0)
        out[name] = {r['backbone']: r for r in comparison['rows']}
        log(f"probed {name}: " + ', '.join(f"{k} {r['mean_iou']:.3f}" for k, r in out[name].items()))
    return out

def signals_vs_iou(run_folders:list) -> str:
    "Across every validation of every run: does a label-free signal's change from the start move with the probe IoU's (Spearman)?"
    from scipy.stats import spearmanr
    points = []
    for folder in run_folders:
        scored = [r for r in core.read_health(Path(folder) / 'checkpoints' / 'health.jsonl') if r['kind'] == 'validation' and 'mean_iou' in r]
        points += [(r['mean_iou'] - scored[0]['mean_iou'], r['rankme'] - scored[0]['rankme'], r['neighbour_agreement'],
                    r['intensity_sensitivity'] - scored[0]['intensity_sensitivity']) for r in scored[1:]]
    if len(points) < 4: return "label-free signals: too few validations to compare"
    iou, *signals = np.array(points).T
    names = ('effective rank change', 'neighbour agreement', 'intensity sensitivity change')
    return '; '.join(f"{n}: Spearman {spearmanr(s, iou).statistic:+.2f}" for n, s in zip(names, signals)) + \
        f" (over {len(points)} validations of {len(run_folders)} runs, against the IoU's change from the start)"

def across_seeds(runs:dict, scores:dict, sets:list) -> list[list]:
    """Per mode and anchor trained with several seeds: each set's mean change over the seeds (`harness.over_seeds`),
    marked * only where every seed's gap is beyond noise, on the same side."""
    lines = []
    for mode, gram in dict.fromkeys((r['mode'], r['gram_weight']) for r in runs.values()):
        labels = [label for label, r in runs.items() if (r['mode'], r['gram_weight']) == (mode, gram)]
        if len(labels) < 2: continue
        cells = []
        for s in sets:
            gaps = [(scores[s][l]['delta_mean_iou'], scores[s][l]['delta_mean_iou_std']) for l in labels]
            summary = over_seeds(gaps)
            each = ' '.join(f'{g:+.3f}' for g, _ in gaps)
            cells.append(f"{summary['mean']:+.3f} ({each}){'*' if summary['consistent'] else ''}")
        lines.append([mode, f"{gram:g}", f'mean of {len(labels)}', *cells, f"{np.mean([runs[l]['train_s'] for l in labels]) / 60:.1f} min"])
    return lines

def table(runs:dict, scores:dict, target:list, source:list) -> str:
    "Mode x anchor (x seed): each set's mean-IoU change from the start ± its paired spread, and the wall time; then the mean over seeds."
    header = ['mode', 'gram', 'seed', *[f'{s} (target)' for s in target], *[f'{s} (source)' for s in source], 'train']
    start = [f"{scores[s]['start']['mean_iou']:.3f}±{scores[s]['start']['mean_iou_std']:.3f}" for s in target + source]
    lines = [['start', '', '', *start, '']]
    for label, run in runs.items():
        cells = []
        for s in target + source:
            gap, spread = scores[s][label]['delta_mean_iou'], scores[s][label]['delta_mean_iou_std']
            cells.append(f"{gap:+.3f}±{spread:.3f}{'*' if beyond_noise(gap, spread) else ''}")
        lines.append([run['mode'], f"{run['gram_weight']:g}", run['seed'], *cells, f"{run['train_s'] / 60:.1f} min"])
    return text_table(header, lines + across_seeds(runs, scores, target + source))

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--start', type=Path, default=None, help="a pretrained start made before (skips stage 1)")
    p.add_argument('--modes', default=','.join(ADAPT_MODES), help=f"comma-separated, of {', '.join(ADAPT_MODES)}")
    p.add_argument('--gram', default='0,1', help="gram_weight values, comma-separated")
    p.add_argument('--out', type=Path, default=None, help="study folder (default: runs/pretrained-start-TIME)")
    p.add_argument('--json', default=None, help="append the results as one JSON line here")
    p.add_argument('--lr', type=float, default=None,
                   help=f"the adaptation runs' lr (default {PRETRAINED_ADAPT['lr']:g})")
    p.add_argument('--epochs', type=int, default=None,
                   help=f"the adaptation runs' epochs (default {PRETRAINED_ADAPT['epochs']})")
    p.add_argument('--seeds', type=seed_list, default=None, help="training seeds, comma-separated: each mode and anchor is trained once per seed (the runs' "
                   "own noise, which the probe's spread does not include), and the table adds their mean")
    p.add_argument('--set', action='append', default=[], type=setting, metavar='FIELD=VALUE',
                   help="override one TrainConfig field of the adaptation runs (repeatable), e.g. --set dino_weight=0")
    p.add_argument('--validate', action='store_true', help="validate during adaptation on the first target set (224 px, every 10 epochs): "
                   "records the IoU and the label-free signals along each run in its health.jsonl")
    p.add_argument('--probe-scale', type=float, default=None, help="probe whole sections at this working scale by blended tiles (1: native), "
                   "as ssl-dino-features extracts them, instead of resizing them to 448 px")
    p.add_argument('--source', choices=('isbi', 'synthetic'), default='isbi', help="what the start is pretrained on: the ISBI sections (real "
                   "ssTEM, close to the target), or 60 synthetic EM images (a domain gap, as between Meta's images and EM), forgetting then "
                   "probed on 20 labelled synthetic sections; with --start, the source the start was pretrained on")
    p.add_argument('--quick', action='store_true', help="synthetic data and 3-epoch runs: checks the whole path")
    args = p.parse_args(argv)
    out = args.out or (Path(tempfile.mkdtemp(prefix='pretrained-start-')) if args.quick else ROOT / 'runs' / f"pretrained-start-{time.strftime('%Y%m%d-%H%M%S')}")
    global SOURCE_UNLABELED, TARGET_UNLABELED, TARGET_SETS, SOURCE_SETS
    if args.quick and args.source != 'isbi': p.error("--quick uses synthetic stand-ins for every set: leave --source out")
    if args.quick:                                         # synthetic stand-ins: two labelled sets of other seeds
        syn = [write_synthetic_labelled(out / f'synthetic_{i}', n=8, size=224, seed=i) for i in range(3)]
        SOURCE_UNLABELED, TARGET_UNLABELED = [syn[0] / 'images'], syn[1] / 'images'
        TARGET_SETS, SOURCE_SETS = [('target', syn[1] / 'images', syn[1] / 'labels')], [('source', syn[2] / 'images', syn[2] / 'labels')]
    elif args.source == 'synthetic':                       # the source: synthetic EM, unlabelled for pretraining, labelled for forgetting
        SOURCE_UNLABELED = [core.write_synthetic_em(out / 'synthetic_source', n=60, size=512, seed=100)[0].parent]
        labelled = write_synthetic_labelled(out / 'synthetic_labelled', n=20, size=512, seed=200)
        SOURCE_SETS = [('synthetic membranes', labelled / 'images', labelled / 'labels')]
    missing = [str(f) for f in [*SOURCE_UNLABELED, TARGET_UNLABELED, *(x for s in TARGET_SETS + SOURCE_SETS for x in s[1:])] if not Path(f).exists()]
    if missing: p.error(f"missing data: {', '.join(missing)} (see ../shared/data), or use --quick")
    overrides = {**{k: v for k, v in dict(lr=args.lr, epochs=args.epochs).items() if v is not None}, **dict(args.set)}
    if args.validate: overrides.update(val_images=str(TARGET_SETS[0][1]), val_masks=str(TARGET_SETS[0][2]), val_size=224, val_every=10)
    if args.seeds and 'seed' in overrides: p.error("give the training seeds either as --seeds or as --set seed=N, not both")
    seeds = args.seeds or [overrides.get('seed', 0)]
    if len(set(seeds)) < len(seeds): p.error(f"--seeds {','.join(map(str, seeds))}: a seed given twice would train into the same folder")
    t0 = time.time()
    start = args.start or pretrain(out, args.quick)
    runs = {}
    for mode in args.modes.split(','):
        if mode not in ADAPT_MODES: p.error(f"unknown mode {mode}: choose from {', '.join(ADAPT_MODES)}")
        for gram in [float(g) for g in args.gram.split(',')]:
            if mode == 'frozen' and gram: continue          # nothing trains in the backbone: nothing to anchor
            for seed in seeds:
                label = f'{mode}, gram {gram:g}' + (f', seed {seed}' if len(seeds) > 1 else '')
                log(f"\n######## adapting {start} with {label}")
                runs[label] = dict(mode=mode, gram_weight=gram, seed=seed, **adapt(start, mode, gram, out / label.replace(', ', '_').replace(' ', '-'),
                                                                                  args.quick, {**overrides, 'seed': seed}))
    backbones = {'start': start, **{label: run['backbone'] for label, run in runs.items()}}
    scores = probe_sets(backbones, TARGET_SETS + SOURCE_SETS, args.quick, args.probe_scale)
    target, source = [s[0] for s in TARGET_SETS], [s[0] for s in SOURCE_SETS]
    lr = overrides.get('lr', PRETRAINED_ADAPT['lr'])
    epochs = overrides.get('epochs', (PRETRAINED_QUICK_RUN if args.quick else PRETRAINED_ADAPT)['epochs'])
    log(f"\nstart: {start}; {len(runs)} adaptations of {TARGET_UNLABELED} (lr {lr:g}, "
        f"{epochs} epochs{''.join(f', {k}={v}' for k, v in args.set)}); CPU {torch.get_num_threads()} threads, "
        f"{'bf16' if core.amp_enabled(torch.device('cpu')) else 'float32'}; probe {f'whole sections at scale {args.probe_scale:g}' if args.probe_scale else 'resized'}; "
        f"whole study {(time.time() - t0) / 60:.1f} min")
    log(table(runs, scores, target, source))
    if args.validate: log(signals_vs_iou([run['out'] for run in runs.values()]))
    log("each cell: mean IoU of the adapted backbone minus the start's on the same held-out sections, ± the spread of that gap "
        "(paired resamples x probe seeds); * beyond twice the spread. Target: the set adapted on; source: the set pretrained on. "
        "Mean of N: the mean change over the training seeds (each seed's in brackets); * where every seed's is beyond twice its spread, on the same side.")
    if args.json:
        keep = ('mean_iou', 'mean_iou_std', 'delta_mean_iou', 'delta_mean_iou_std')
        append_json_line(args.json, 'bench/pretrained_start.py', dict(
            start=str(start), probe_scale=args.probe_scale,
            probe=asdict(PROBE_PRESETS['pretrained-start-quick' if args.quick else 'pretrained-start']),
            sets={n: [str(i), str(m)] for n, i, m in TARGET_SETS + SOURCE_SETS},
            runs={k: {**v, 'backbone': str(v['backbone'])} for k, v in runs.items()},
            scores={s: {k: {m: r[m] for m in keep} for k, r in rows.items() if k in backbones}
                    for s, rows in scores.items()}))

if __name__ == '__main__': main()
