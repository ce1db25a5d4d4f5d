#!/usr/bin/env python
"""Filters, backbone features, or both? `ssl-dino-segment`'s pixel classifier on real labelled EM (issue 35).

For each labelled set the first N sections fit the classifier (`segment.labelled_pixels`, `fit_classifier`) and every
other section is scored at every pixel, for each feature set: `filters` (the probe's filter bank per patch at the
working scale, upsampled, and the responses per pixel), `dino` (the backbone's patch features upsampled to pixels),
and `both` side by side, the backbone's columns weighed against the filter bank's by a cross-fit on the fitting sections
(`segment.cross_fit_weight`). The scores are the probe's: IoU per class and mean IoU, each with its
spread (classifier seeds x bootstrap resamples of the scored sections), and the gap of `both` to the better of the
other two with its paired spread. It also prints which feature set `ssl-dino-segment` would have chosen from the
fitting sections alone (its self-score), to see whether that choice holds on the sections it never saw.

    python bench/segment.py --backbone runs/adapt-cpu/adapted_backbone.pth    # VNC mitochondria and membranes, ISBI membranes
    python bench/segment.py --backbone dinov2_tiny14 --sets isbi-membrane      # random weights, one set
    python bench/segment.py --backbone B --sets vnc-synapse         # synapses: a class the method was not developed on
    python bench/segment.py --backbone B --forest       # also a random forest (ilastik's classifier) on the same pixels, scored on a grid of pixels
    python bench/segment.py --backbone B --memory       # peak RSS of segmenting 4 and 16 sections of 1024 px: flat if memory is bounded
"""
from __future__ import annotations
import argparse, json, platform, subprocess, sys, tempfile, time
from pathlib import Path

from harness import LABELLED_SETS, VNC_IMAGES, VNC_UNLABELED, beyond_noise, log     # first: puts this checkout on sys.path

import numpy as np
import torch
from semisupervised_learning.runtime import amp_enabled
from semisupervised_learning.probe import load_labelled, confusion_matrix, score_row, difference_spread
from semisupervised_learning.evaluate import format_table, resolve_backbone, filter_responses
from semisupervised_learning.segment import (FEATURE_PARTS, FEATURE_SETS, Segmenter, choose_features, fit_classifier,
                                             labelled_pixels, pixel_columns, plot_segmentations, restore_segmenter,
                                             sample_grid, score_feature_sets, segmenter_state)
from semisupervised_learning.segment_volume import write_segmentation

# the labelled sets (bench/harness.py) and a class never looked at while the method was developed, as a check
SETS = {name: (images, masks, classes) for name, (images, masks, classes, _) in LABELLED_SETS.items()}
SETS['vnc-synapse'] = (VNC_IMAGES, VNC_IMAGES.parent / 'masks' / 'synapse', ['other', 'synapse'])   # not by default
TARGET = {**{name: target for name, (*_, target) in LABELLED_SETS.items()}, 'vnc-synapse': 'synapse'}  # reported class


def cpu_name() -> str:
    try: return next(l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name'))
    except (OSError, StopIteration): return platform.processor() or 'unknown CPU'


def forest_rows(samples:dict, data, n_fit:int, names:list, step:int=4, seed:int=0) -> dict:
    "Linear classifier and a random forest (50 trees, depth 16) fitted on the same pixels, both scored on every `step`-th pixel of the held-out sections."
    from sklearn.ensemble import RandomForestClassifier
    rows, k = {}, data.n_classes
    for name in FEATURE_SETS if samples['dino'] else ('filters',):
        x, y = pixel_columns(samples, range(n_fit), name).numpy(), torch.cat(samples['labels'][:n_fit]).numpy()
        forest = RandomForestClassifier(n_estimators=50, max_depth=16, n_jobs=1, random_state=seed).fit(x, y)
        linear = Segmenter(fit_classifier(samples, range(n_fit), name, k), name, data.class_values, scale=data.scale)
        counts = {'linear': [], 'forest': []}
        for i in range(n_fit, len(data)):
            section, mask = data.images[i].numpy(), data.masks[i]
            grid_y, grid_x = np.meshgrid(np.arange(0, mask.shape[0], step), np.arange(0, mask.shape[1], step), indexing='ij')
            ys, xs = torch.from_numpy(grid_y.ravel()), torch.from_numpy(grid_x.ravel())
            columns = {part: sample_grid(grid, ys, xs, mask.shape, data.scale) for part, grid in samples['grids'][i].items()}
            columns['pixel'] = torch.from_numpy(filter_responses(section)[ys, xs])
            pixels = torch.cat([columns[p] for p in FEATURE_PARTS[name]], 1).numpy()
            truth = mask[ys, xs]
            counts['forest'].append(confusion_matrix([torch.from_numpy(forest.predict(pixels))], [truth], k))
            classes = linear.predict(section, samples['grids'][i])
            counts['linear'].append(confusion_matrix([torch.from_numpy(classes[grid_y, grid_x].ravel()).long()], [truth], k))
        for kind, c in counts.items(): rows[f'{name} {kind}'] = score_row(f'{name} {kind}', torch.stack(c)[None].numpy(), 1000)
    return rows


def bench_set(set_name:str, backbone, args) -> dict:
    images, masks, names = SETS[set_name]
    t0 = time.time()
    data = load_labelled(images, masks, scale=args.scale)
    samples = labelled_pixels(data, backbone, args.pixels, amp=args.amp)
    features_s = time.time() - t0
    held = list(range(args.n_fit, len(data)))
    t1 = time.time()
    scored = score_feature_sets(samples, data, FEATURE_SETS, folds=[held], seeds=args.seeds, n_bootstrap=args.bootstrap, amp=args.amp)
    fitting = {k: v[:args.n_fit] for k, v in samples.items()}
    own = score_feature_sets(fitting, data[:args.n_fit], FEATURE_SETS, folds=3, seeds=1, n_bootstrap=args.bootstrap, amp=args.amp)
    choice, why = choose_features(own, names)
    score_s = time.time() - t1
    rows, conf = scored['rows'], scored['confusions']
    better = max(('filters', 'dino'), key=lambda k: rows[k]['mean_iou'])
    gap, spread = rows['both']['mean_iou'] - rows[better]['mean_iou'], difference_spread(conf['both'], conf[better], args.bootstrap)
    verdict = 'within noise' if not beyond_noise(gap, spread) else 'better' if gap > 0 else 'worse'
    log(f"\n#### {set_name}: {args.n_fit} sections fit ({', '.join(data.names[:args.n_fit])}), {len(held)} scored at every pixel; "
        f"{args.pixels} pixels sampled per section; {args.seeds} seeds x {args.bootstrap} resamples")
    log(format_table(list(rows.values()), names).replace('backbone', 'features', 1))
    weight = scored['backbone_weights']['both'][0]
    log(f"both - {better}: {gap:+.3f} ± {spread:.3f} ({verdict}); backbone columns weighed {weight:g} (cross-fit on the fitting sections)")
    log(f"the self-score on the {args.n_fit} fitting sections would use {why}")
    log(f"features {features_s:.0f} s, fits and scoring {score_s:.0f} s")
    result = dict(set=set_name, n_fit=args.n_fit, n_scored=len(held), rows=rows, better=better, gap=gap, gap_std=spread, verdict=verdict,
                  self_score_choice=choice, self_score_why=why, backbone_weight=weight, target=names.index(TARGET[set_name]), class_names=names,
                  features_s=features_s, score_s=score_s)
    if args.figure:
        show = held[:3]             # the first held-out sections, each feature set's classes from the fit on the fitting sections
        shown = Segmenter(None, choice, data.class_values, report=dict(labelled=data[show], class_names=names, scores=dict(
            rows=rows, predictions={k: [p[i] for i in show] for k, p in scored['predictions'].items()})))
        path = Path(args.figure) / f'segment_{set_name}.png'
        path.parent.mkdir(parents=True, exist_ok=True)
        plot_segmentations(shown, save_path=path)
        log(f"figure: {path} ('chosen' marks the self-score's pick)")
    if args.forest:
        t2 = time.time()
        forest = forest_rows(samples, data, args.n_fit, names)
        log(f"linear vs random forest on the same sampled pixels, scored on every 4th pixel (rows and columns) of the {len(held)} held-out sections:")
        log(format_table(list(forest.values()), names).replace('backbone', 'classifier', 1))
        log(f"forest comparison {time.time() - t2:.0f} s")
        result['forest'] = forest
    return result


def summary(results:list, backbone:str) -> str:
    lines = ["| set | fit / scored | filters mIoU | dino mIoU | both mIoU | both - better | backbone weight | "
             "target IoU filters / dino / both | self-score picks |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        cell = lambda k: f"{r['rows'][k]['mean_iou']:.3f} ±{r['rows'][k]['mean_iou_std']:.3f}"
        t = r['target']
        target = ' / '.join(f"{r['rows'][k]['iou'][t]:.3f}" for k in FEATURE_SETS)
        lines.append(f"| {r['set']} | {r['n_fit']} / {r['n_scored']} | {cell('filters')} | {cell('dino')} | {cell('both')} | "
                     f"{r['gap']:+.3f} ±{r['gap_std']:.3f} vs {r['better']} ({r['verdict']}) | {r['backbone_weight']:g} | {r['class_names'][t]}: {target} | "
                     f"{r['self_score_choice']} |")
    return '\n'.join(lines)


def memory_child(argv):
    "Segment a volume with a stored classifier, nothing else in this process; print the peak RSS in MB."
    volume, state_file, backbone_spec, threads = argv[0], argv[1], argv[2], int(argv[3])
    torch.set_num_threads(threads)
    state = json.loads(Path(state_file).read_text())
    segmenter = restore_segmenter(state, resolve_backbone(backbone_spec) if state['features'] != 'filters' else None)
    def status(key): return next(int(l.split()[1]) / 1024 for l in open('/proc/self/status') if l.startswith(key))   # MB
    Path('/proc/self/clear_refs').write_text('5')           # resets the peak (VmHWM) to the present RSS: the peak of segmenting alone
    rss0, t0 = status('VmRSS'), time.time()
    write_segmentation(segmenter, volume, Path(volume).with_name('labels.zarr'), progress=False)
    print(json.dumps(dict(peak_rss_mb=status('VmHWM'), before_mb=rss0, seconds=time.time() - t0)))


def memory_check(backbone_spec:str, args) -> list:
    "Peak RSS of segmenting 4 and 16 sections of 1024 x 1024 px (VNC stack2 sections, 'both' features) in a fresh process each: flat if memory is bounded."
    from semisupervised_learning.data import load_em_image
    from semisupervised_learning.volumes import write_volume
    images, masks, names = SETS['vnc-mitochondria']
    data = load_labelled(images, masks, scale=args.scale)[:2]
    backbone = resolve_backbone(backbone_spec)
    samples = labelled_pixels(data, backbone, args.pixels, amp=args.amp)
    segmenter = Segmenter(fit_classifier(samples, range(2), 'both', data.n_classes), 'both', data.class_values, backbone, data.scale)
    folder = Path(tempfile.mkdtemp())
    (folder / 'state.json').write_text(json.dumps(segmenter_state(segmenter)))
    raw = sorted(VNC_UNLABELED.glob('*.tif'))
    out = []
    for n in (4, 16):
        class Sections:                     # write_volume reads it a section at a time
            shape, dtype = (n, 1024, 1024), np.dtype(np.uint8)
            def __getitem__(self, z): return np.stack([(load_em_image(raw[i % len(raw)]) * 255).round().astype(np.uint8) for i in range(*z.indices(n))])
        volume = write_volume(folder / f'{n}' / 'volume.zarr', Sections(), voxel_size=(50, 4.6, 4.6))
        done = subprocess.run([sys.executable, __file__, '--backbone', backbone_spec, '--memory-child', volume, str(folder / 'state.json'), backbone_spec,
                               str(args.threads)], capture_output=True, text=True, check=True)
        out.append(dict(sections=n, **json.loads(done.stdout.strip().splitlines()[-1])))
        log(f"memory: {n} sections of 1024 x 1024 px ('both' features; the volume is {n} MB as uint8, {4 * n} MB as float32): "
            f"peak RSS {out[-1]['peak_rss_mb']:.0f} MB ({out[-1]['before_mb']:.0f} MB with the backbone loaded, before segmenting), {out[-1]['seconds']:.0f} s")
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument('--backbone', required=True, help="adapted_backbone.pth, a checkpoint, or a DINOv2 name (dinov2_tiny14: random weights)")
    p.add_argument('--sets', type=lambda s: s.split(','), default=list(SETS)[:3],
                   help=f"comma-separated among {', '.join(SETS)}")
    p.add_argument('--n-fit', type=int, default=5, help="the first N sections fit the classifier; the rest are scored")
    p.add_argument('--pixels', type=int, default=2**14, help="labelled pixels sampled per fitting section")
    p.add_argument('--seeds', type=int, default=3, help="classifier fits per feature set from different initial weights")
    p.add_argument('--bootstrap', type=int, default=1000, help="resamples of the scored sections")
    p.add_argument('--scale', type=float, default=1.0, help="the backbone's working scale")
    p.add_argument('--amp', action=argparse.BooleanOptionalAction, default=None, help="bf16 autocast for the backbone (default: where training uses it)")
    p.add_argument('--threads', type=int, default=1, help="torch threads (the 2-core machine is shared)")
    p.add_argument('--forest', action='store_true', help="also a random forest on the same pixels (linear vs forest)")
    p.add_argument('--memory', action='store_true', help="also the bounded-memory check (peak RSS, 4 and 16 sections of 1024 px)")
    p.add_argument('--figure', default=None, metavar='DIR', help="save DIR/segment_SET.png: 3 held-out sections, true masks and each feature set's classes")
    p.add_argument('--json', default=None, help="append one JSON line with every number here")
    p.add_argument('--memory-child', nargs=4, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.memory_child: return memory_child(args.memory_child)
    torch.set_num_threads(args.threads)
    if unknown := [s for s in args.sets if s not in SETS]: raise SystemExit(f"error: --sets {','.join(unknown)}: choose among {', '.join(SETS)}")
    if missing := [str(SETS[s][0]) for s in args.sets if not SETS[s][0].exists()]: raise SystemExit(f"error: no data at {', '.join(missing)}")
    precision = 'bf16 autocast' if amp_enabled(torch.device('cpu'), args.amp) else 'float32'
    log(f"{cpu_name()}, {args.threads} torch thread(s), backbone in {precision}, classifier in float32; backbone {args.backbone}")
    t0 = time.time()
    backbone = resolve_backbone(args.backbone)
    results = [bench_set(s, backbone, args) for s in args.sets]
    log(f"\n{summary(results, args.backbone)}\n\ntotal {time.time() - t0:.0f} s")
    memory = memory_check(args.backbone, args) if args.memory else None
    if args.json:
        with open(args.json, 'a') as f:
            f.write(json.dumps(dict(backbone=args.backbone, cpu=cpu_name(), precision=precision, threads=args.threads, n_fit=args.n_fit,
                                    pixels=args.pixels, seeds=args.seeds, n_bootstrap=args.bootstrap, scale=args.scale, results=results,
                                    memory=memory, seconds=time.time() - t0)) + '\n')


if __name__ == '__main__':
    main()
