#!/usr/bin/env python
"""Do the label-free signals move with the probe's IoU? (issue 26)

A run without labelled sections can only log label-free signals of its patch features (`ValidationProbe` without masks):
the effective rank (RankMe), the agreement with the start's patch neighbourhoods and the sensitivity to a change of
gamma and contrast. They are worth showing only if they move with what the probe measures. This script takes the
pretrained-start studies (`bench/pretrained_start.py --json FILE`: the start, every adapted backbone and their IoU
changes per labelled set), computes each signal on the same held-out sections the probe scored, for the start and
every adapted backbone, and reports the rank correlation (Spearman) of each signal's change from the start with the
IoU's change, pooled over every (backbone, set) pair and per set, and with the size of the IoU's change (how far it
moved, either way).

    python bench/label_free.py /tmp/ps10.jsonl runs/pretrained-start.jsonl --scale 1    # 277 s for 51 pairs (EPYC-AVX2)
"""
from __future__ import annotations
import argparse, time
from dataclasses import asdict
from pathlib import Path

from harness import (PROBE_PRESETS, STUDY_SOURCE_SETS, STUDY_TARGET_SETS, append_json_line, beyond_noise, log,
                     read_json_lines)
import torch
from scipy.stats import spearmanr
from semisupervised_learning import core
from semisupervised_learning.probe import feature_signals, intensity_changed, load_labelled, section_features

SIGNALS = {'effective rank': 'rankme', 'neighbour agreement': 'neighbour_agreement', 'intensity sensitivity': 'intensity_sensitivity'}

def signals(backbone, images, scale, start_neighbours=None) -> dict:
    "The label-free signals (`feature_signals`, as `ValidationProbe.score` gives them) of one backbone on held-out sections."
    found = feature_signals(section_features(backbone, images, scale, device='cpu'),
                            section_features(backbone, intensity_changed(images), scale, device='cpu'), start_neighbours)
    return {**{name: found[key] for name, key in SIGNALS.items()}, 'neighbours': found['neighbours']}

def study_rows(study:dict, scale:float|None) -> list[dict]:
    "One row per (adapted backbone, labelled set): the IoU change the study measured and each signal's change from the start."
    probe = study.get('probe', asdict(PROBE_PRESETS['pretrained-start']))     # the study's (older lines: the full one)
    known = {name: (images, masks) for name, images, masks in STUDY_TARGET_SETS + STUDY_SOURCE_SETS}
    sets = {name: paths for name, paths in (study.get('sets') or known).items() if name in study['scores']}
    scale = study.get('probe_scale', scale)
    backbones = {label: core.load_dinov2(weights=run['backbone']).eval() for label, run in study['runs'].items()}
    start, rows = core.load_dinov2(weights=study['start']).eval(), []
    for name, (images, masks) in sets.items():
        held_out = load_labelled(images, masks, size=probe['size'], scale=scale)[probe['n_train']:].images   # the sections the probe scored
        with torch.no_grad():
            reference = signals(start, held_out, scale)
            for label, backbone in backbones.items():
                found = signals(backbone, held_out, scale, reference['neighbours'])
                rows.append(dict(set=name, backbone=label, start=study['start'], iou_change=study['scores'][name][label]['delta_mean_iou'],
                                 iou_change_std=study['scores'][name][label]['delta_mean_iou_std'],
                                 **{s: found[s] - reference[s] if s != 'neighbour agreement' else found[s] for s in SIGNALS}))
        log(f"{name}: " + '; '.join(f"{r['backbone']} IoU {r['iou_change']:+.3f}, "
                                    + ', '.join(f"{s} {r[s]:+.3f}" for s in SIGNALS) for r in rows if r['set'] == name))
    return rows

def rho(x:list, y:list) -> str:
    "Spearman's rank correlation, or n/a where either side does not vary."
    return f"{spearmanr(x, y).statistic:+.2f}" if len(set(x)) > 1 and len(set(y)) > 1 else 'n/a'

def correlations(rows:list[dict]) -> str:
    "Spearman of each signal's change with the IoU's change: pooled, and within each set."
    def line(subset, what):
        if len(subset) < 4: return f"{what}: {len(subset)} pairs, too few"
        iou = [r['iou_change'] for r in subset]
        beyond = sum(beyond_noise(r['iou_change'], r['iou_change_std']) for r in subset)
        return f"{what} ({len(subset)} pairs, {beyond} beyond noise): " + ', '.join(f"{s} {rho([r[s] for r in subset], iou)}" for s in SIGNALS)
    def far(subset, what):                               # against how far the IoU moved, either way
        size = [abs(r['iou_change']) for r in subset]
        return f"against the size of the IoU's change, {what} ({len(subset)} pairs): " + ', '.join(f"{s} {rho([r[s] for r in subset], size)}" for s in SIGNALS)
    moved = [r for r in rows if r['neighbour agreement'] < 0.9]       # the backbones whose features moved (not LoRA's, not 300 steps')
    return '\n'.join([line(rows, 'all sets'), *(line([r for r in rows if r['set'] == name], name) for name in dict.fromkeys(r['set'] for r in rows)),
                      line(moved, 'pairs whose features moved, neighbour agreement < 0.9'), far(rows, 'all sets'),
                      far(moved, 'the pairs whose features moved')])

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('studies', nargs='+', type=Path, help="JSON lines of bench/pretrained_start.py --json")
    p.add_argument('--scale', type=float, default=None, help="the probe's working scale for studies whose lines do not record it (1: native; left out: resized)")
    p.add_argument('--json', default=None, help="append every row here as a JSON line")
    args = p.parse_args(argv)
    missing = [str(f) for f in args.studies if not f.is_file()]
    if missing: p.error(f"{', '.join(missing)}: no such file (give the files bench/pretrained_start.py --json wrote)")
    try: studies = read_json_lines(args.studies, 'bench/pretrained_start.py')
    except ValueError as e: p.error(str(e))
    t0, rows = time.time(), []
    for study in studies: rows += study_rows(study, args.scale)
    print(f"\nSpearman of each signal's change from the start against the IoU's change ({time.time() - t0:.0f} s; CPU, "
          f"{'bf16' if core.amp_enabled(torch.device('cpu')) else 'float32'}):\n" + correlations(rows))
    for row in rows if args.json else []: append_json_line(args.json, 'bench/label_free.py', row)

if __name__ == '__main__': main()
