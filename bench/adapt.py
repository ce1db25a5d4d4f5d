#!/usr/bin/env python
"""Does adaptation help? One DINO run of a fixed budget, then the dense segmentation probe before and after (issue 14).

For a named configuration (TrainConfig overrides, all in harness.FROM_SCRATCH) it trains with
`core.train(TrainConfig(...))` on a folder of unlabelled EM images, then scores with the project's dense
linear probe (`evaluate.compare_backbones`, the same probe settings for every row) on a labelled set:

- start:    the backbone the run started from, rebuilt from the config stored in the run's checkpoint
            exactly as `core.train` builds it before training (same seed, same init or weights), and
            checked against the fingerprint of the weights training really started from;
- adapted:  the run's teacher backbone, as exported to `adapted_backbone.pth` (LoRA merged);
- filter bank and majority class: the baselines any backbone has to beat.

It prints the probe table and one summary line per configuration: start and adapted mean IoU, the gain
with its spread (paired bootstrap of the held-out images x probe seeds; 'within noise' when the gain is
under twice its spread), the filter bank, wall times, and the run's health warnings (records of kind
'diagnosis' in checkpoints/health.jsonl).

    python bench/adapt.py --config cpu                             # at most ~20 minutes on a 2-core CPU
    python bench/adapt.py --config gpu-vits --weights dinov2_vits14_pretrain.pth --json adapt.jsonl
    python bench/adapt.py --quick                                  # the whole path on synthetic data, ~1 minute
    python bench/adapt.py --config cpu --unlabeled DIR --images DIR --masks DIR --class-names background,mito
    python bench/adapt.py --config cpu --also vnc-membrane,isbi-membrane   # the same backbones probed on every labelled set
    python bench/adapt.py --config cpu --probe-scale 1,2.3         # also probe whole sections by tiles at these working scales
    python bench/adapt.py --config cpu --seeds 0,1,2 --json a.jsonl   # one run per training seed, then each set's gain over the seeds
    python bench/adapt.py --across-seeds a.jsonl b.jsonl          # that table from earlier runs' JSON lines, training nothing
    python bench/adapt.py --config cpu-pretrained                  # the pretrained-start study: bench/pretrained_start.py
"""
from __future__ import annotations
import argparse, math, sys, tempfile, time
from pathlib import Path

from harness import (BUDGET_MINUTES, FROM_SCRATCH, LABELLED_SETS, PROBE_PRESETS, QUICK_RUN, ROOT, VNC_UNLABELED,
                     append_json_line, log, over_seeds, probe_set, read_json_lines, seed_list, setting, text_table)
import torch
from PIL import Image
from semisupervised_learning import core
from semisupervised_learning.evaluate import format_table
from semisupervised_learning.probe import write_synthetic_labelled

IMAGES, MASKS, CLASS_NAMES, _ = LABELLED_SETS['vnc-mitochondria']      # the main labelled set
OTHER_SETS = {name: labelled for name, labelled in LABELLED_SETS.items() if name != 'vnc-mitochondria'}   # --also

def starting_backbone(config:dict) -> torch.nn.Module:
    "The backbone a run started from, rebuilt from its stored config the way `core.train` builds it before training."
    torch.manual_seed(config['seed'])                 # core.train seeds first; building the data draws nothing from torch
    return core.build_backbone(config)

def health_warnings(run:Path) -> list[str]:
    "The run's diagnoses (checkpoints/health.jsonl records of kind 'diagnosis'), one line per symptom with its epochs."
    path = run / 'checkpoints' / 'health.jsonl'
    epochs = {}
    for record in core.read_health(path) if path.exists() else []:
        if record['kind'] == 'diagnosis': epochs.setdefault(record['symptom'], []).append(record['epoch'] + 1)
    return [f"{symptom} (epoch{'s' if len(e) > 1 else ''} {', '.join(map(str, e[:8]))}{' ...' if len(e) > 8 else ''})"
            for symptom, e in epochs.items()]

def write_quick_data(folder:Path) -> tuple[Path, Path, Path]:
    "Synthetic EM: 24 unlabelled images, and 6 labelled ones with membrane masks (0 = background, 255 = membrane)."
    core.write_synthetic_em(folder / 'unlabeled', n=24, size=192, seed=1)
    labelled = write_synthetic_labelled(folder / 'labelled', n=6, size=224, seed=7, membrane=255)
    return folder / 'unlabeled', labelled / 'images', labelled / 'labels'

def run_config(name:str, args) -> dict:
    "Train one configuration, probe its start and adapted backbones; returns what the summary and the JSON need."
    overrides = {**FROM_SCRATCH[name], **dict(args.set), **(QUICK_RUN if args.quick else {})}
    if args.weights:   # a pretrained start: TrainConfig's own defaults (LoRA, DINO + iBOT + KoLeo, ...) instead of the from-scratch recipe
        defaults = core.TrainConfig()
        overrides.update({k: getattr(defaults, k) for k in core.RANDOM_INIT_RECIPE if k != 'lr'}, weights=str(args.weights), pretrained=True,
                         backbone=FROM_SCRATCH[name]['backbone'])   # the file's architecture
        overrides.update({**dict(args.set), **(QUICK_RUN if args.quick else {})})
    if overrides.get('device') == 'cuda' and not torch.cuda.is_available():
        raise SystemExit(f"error: config {name!r} needs a CUDA GPU (none here); try --config cpu, or --quick.")
    run = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix='adapt-quick-')) if args.quick else \
          ROOT / 'runs' / f"adapt-{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    if run.exists() and any(run.iterdir()): raise SystemExit(f"error: --out {run} is not empty: give a new folder.")
    config = core.TrainConfig(**{**overrides, 'data': str(args.unlabeled), 'out': str(run), 'progress': False})
    log(f"\n######## {name}{' (quick)' if args.quick else ''}: training on {args.unlabeled} -> {run}")
    t0 = time.time()
    result = core.train(config)
    train_s = time.time() - t0
    stored = core.read_checkpoint(run / 'checkpoints' / 'checkpoint_latest.pth')['config']
    start = starting_backbone(stored)
    expected = getattr(result['teacher'].backbone, 'start_fingerprint', None)
    if expected is not None and not math.isclose(core.weights_fingerprint(start), expected, rel_tol=1e-9, abs_tol=1e-6):
        raise RuntimeError("The rebuilt starting backbone differs from the weights training started from "
                           f"(fingerprint {core.weights_fingerprint(start):.6f} vs {expected:.6f}): core.train builds it differently now; update starting_backbone.")
    log(f"start backbone: {stored['backbone']} rebuilt from the run's stored config" + (", the same weights training started from" if expected is not None else ''))
    probe = PROBE_PRESETS['quick' if args.quick else 'adapt']
    t1 = time.time()
    backbones = {'start': start, 'adapted': result['outputs']['backbone']}
    names = args.class_names or (['background', 'membrane'] if args.quick else CLASS_NAMES if args.masks == MASKS
                                 else None)                # None: the mask values
    data, comparison = probe_set(backbones, args.images, args.masks, probe, device=result['device'],
                                 n_show=2 if args.figure else 0, class_names=names)
    names = names or [str(v) for v in data.class_values]
    if args.figure:
        comparison['figure'].savefig(args.figure, dpi=80)
        Image.open(args.figure).convert('RGB').quantize(colors=128).save(args.figure, optimize=True)   # a third of the size, for a repository
        log(f"figure: {args.figure} (true masks; per row: patch PCA and probe predictions)")
    probe_s = time.time() - t1
    log(f"\nprobe: {probe.n_train} training and {len(data) - probe.n_train} held-out images of {args.images}, "
        f"{probe.size} px resized, {probe.seeds} seeds x {probe.n_bootstrap} resamples")
    log(format_table(comparison['rows'], names))
    rows = {r['backbone']: r for r in comparison['rows']}
    if args.target_class and args.target_class not in names: raise SystemExit(f"error: --target-class {args.target_class} is not one of {', '.join(names)}")
    k = names.index(args.target_class) if args.target_class else len(names) - 1      # the class the summary reports
    def probe_other(set_name, images, masks, set_classes, target, scale=None):
        "One more labelled set, or the same one at a working scale: the summary's numbers for start and adapted."
        t = time.time()
        other, comparison_other = probe_set(backbones, images, masks, probe, scale, device=result['device'], n_show=0,
                                            class_names=set_classes)
        rows_other = {r['backbone']: r for r in comparison_other['rows']}
        how = f"whole sections at scale {scale:g} by tiles" if scale else f"{probe.size} px resized"
        log(f"\nprobe on {set_name}, {how}: {probe.n_train} training and {len(other) - probe.n_train} held-out images "
            f"({time.time() - t:.0f} s)")
        log(format_table(list(rows_other.values()), set_classes))
        c = set_classes.index(target)
        return dict(set=set_name, probe=how, start=rows_other['start']['mean_iou'], start_std=rows_other['start']['mean_iou_std'],
                    adapted=rows_other['adapted']['mean_iou'], adapted_std=rows_other['adapted']['mean_iou_std'],
                    gain=rows_other['adapted']['delta_mean_iou'], gain_std=rows_other['adapted']['delta_mean_iou_std'],
                    within_noise=rows_other['adapted']['within_noise'], filter_bank=rows_other['filter bank']['mean_iou'],
                    majority=rows_other['majority class']['mean_iou'], target_class=target, target_start=rows_other['start']['iou'][c],
                    target_adapted=rows_other['adapted']['iou'][c], target_filter_bank=rows_other['filter bank']['iou'][c],
                    target_std=max(rows_other['start']['iou_std'][c], rows_other['adapted']['iou_std'][c]), seconds=time.time() - t)
    sets = [('main set', args.images, args.masks, names, names[k])] + [(n, *OTHER_SETS[n]) for n in args.also]
    others = [probe_other(*labelled, scale=scale) for scale in args.probe_scale for labelled in sets[:1]]
    others += [probe_other(*labelled, scale=scale) for scale in [None, *args.probe_scale] for labelled in sets[1:]]
    return dict(others=others, config=name + ''.join(f' {k}={v}' for k, v in args.set), quick=args.quick, overrides=overrides, run=str(run), rows=comparison['rows'],
                start=rows['start']['mean_iou'], start_std=rows['start']['mean_iou_std'],
                adapted=rows['adapted']['mean_iou'], adapted_std=rows['adapted']['mean_iou_std'],
                gain=rows['adapted']['delta_mean_iou'], gain_std=rows['adapted']['delta_mean_iou_std'], within_noise=rows['adapted']['within_noise'],
                filter_bank=rows['filter bank']['mean_iou'], majority=rows['majority class']['mean_iou'],
                target_class=names[k], target_start=rows['start']['iou'][k], target_adapted=rows['adapted']['iou'][k],
                target_std=max(rows['start']['iou_std'][k], rows['adapted']['iou_std'][k]), target_filter_bank=rows['filter bank']['iou'][k],
                loss=[result['history'][0], result['history'][-1]], epochs=len(result['history']),
                train_s=train_s, probe_s=probe_s, budget_min=None if args.quick else BUDGET_MINUTES.get(name),
                health=health_warnings(run), device=str(result['device']),
                data=str(args.unlabeled), images=str(args.images),   # the probe's own autocast follows the machine (`amp_enabled`), not the run's amp
                train_precision='bf16' if core.amp_enabled(result['device'], config.amp) else 'float32',
                probe_precision='bf16' if core.amp_enabled(result['device']) else 'float32')

def summary_table(results:list) -> str:
    "One line per configuration and labelled set: start, adapted, gain ± spread, the baselines, wall time, health."
    def cells(label, r):
        return [label, f"{r['start']:.3f}±{r['start_std']:.3f}", f"{r['adapted']:.3f}±{r['adapted_std']:.3f}",
                f"{r['gain']:+.3f}±{r['gain_std']:.3f}", 'within noise' if r['within_noise'] else 'beyond noise',
                f"{r['filter_bank']:.3f}", f"{r['majority']:.3f}", f"{r['target_class']}: {r['target_start']:.3f} -> "
                f"{r['target_adapted']:.3f} ±{r['target_std']:.3f} ({r['target_filter_bank']:.3f})"]
    header = ['config', 'start mIoU', 'adapted mIoU', 'gain', '', 'filter bank', 'majority',
              'target class IoU: start -> adapted (filter bank)', 'train', 'probe', 'health warnings']
    lines = [cells(r['config'] + (' (quick)' if r['quick'] else ''), r)
             + [f"{r['train_s'] / 60:.1f} min" + (f" (budget {r['budget_min']})" if r['budget_min'] else ''),
                f"{r['probe_s']:.0f} s", '; '.join(r['health']) or 'none'] for r in results]
    lines += [cells(f"{r['config']} on {o['set']}" + (f" ({o['probe']})" if o.get('probe') else ''), o) + ['', '', '']
              for r in results for o in r.get('others', [])]
    return text_table(header, lines)

def across_seeds(results:list) -> str:
    "Per config, data, precision, labelled set and probe, over runs that differ only in their seed: `over_seeds`."
    groups = {}
    for r in results:
        train, probe_precision = r.get('train_precision', '?'), r.get('probe_precision', '?')   # '?': older lines
        config = (' '.join(w for w in r['config'].split() if not w.startswith('seed=')) + (' quick' if r['quick'] else '')
                  + (f" from {Path(r['data']).name}" if r.get('data') else '')
                  + (f" ({train})" if train == probe_precision else f" (train {train}, probe {probe_precision})"))
        main = dict(set='main set' + (f" ({'/'.join(Path(r['images']).parts[-2:])})" if r.get('images') else ''),
                    probe=f"{PROBE_PRESETS['quick' if r['quick'] else 'adapt'].size} px resized", gain=r['gain'],
                    gain_std=r['gain_std'])
        for o in [main, *r.get('others', [])]:
            set_name = main['set'] if o['set'] == 'main set' else o['set']          # the main set's other probes carry its plain name
            runs, seed = groups.setdefault((config, set_name, o['probe']), []), r['overrides'].get('seed', 0)
            if any(seed == other for other, _, _ in runs):
                raise ValueError(f"{config}, {set_name}, {o['probe']}: seed {seed} appears twice (the same run given twice?)")
            runs.append((seed, o['gain'], o['gain_std']))
    lines = []
    for (config, set_name, probe), runs in groups.items():
        summary = over_seeds([(g, sd) for _, g, sd in runs])
        lines.append([config, set_name, probe, len(runs), ' '.join(f"{g:+.3f}" for _, g, _ in sorted(runs)),
                      f"{summary['mean']:+.3f}" + (f" ±{summary['sd']:.3f}" if len(runs) > 1 else ' (one run)'),
                      f"{summary['lost']} of {len(runs)}"])
    header = ['config', 'set', 'probe', 'runs', 'gain per seed', 'mean ± seeds\' sd', 'lost beyond the probe spread']
    return text_table(header, lines)

def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if 'cpu-pretrained' in argv or '--config=cpu-pretrained' in argv:   # the pretrained-start study (issue 26): its own script and options
        import pretrained_start
        return pretrained_start.main([a for a in argv if a not in ('--config', 'cpu-pretrained', '--config=cpu-pretrained')])
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument('--config', default='cpu', help=f"one or more of {', '.join(FROM_SCRATCH)}, comma-separated")
    p.add_argument('--weights', default=None, help="start from these pretrained weights (Meta's dinov2_*_pretrain.pth or an adapted_backbone.pth)")
    p.add_argument('--unlabeled', type=Path, default=VNC_UNLABELED, help="folder of unlabelled EM images to adapt on")
    p.add_argument('--images', type=Path, default=IMAGES, help="labelled EM images for the probe")
    p.add_argument('--masks', type=Path, default=MASKS, help="their masks (same file names)")
    p.add_argument('--class-names', type=lambda s: s.split(','), default=None, help="comma-separated, one per mask value")
    p.add_argument('--target-class', default=None, help="the class whose IoU the summary reports (default: the last), e.g. membrane on ISBI")
    p.add_argument('--out', default=None, help="run folder (one config only; with --seeds, OUT-seedS per seed; default: runs/adapt-CONFIG-TIME, a temp folder with --quick)")
    p.add_argument('--json', default=None, help="append one JSON line per run (configuration and seed) here")
    p.add_argument('--figure', default=None, help="save the probe's picture here (2 held-out images: true mask, then patch PCA and predictions of start and adapted)")
    p.add_argument('--set', action='append', default=[], type=setting, metavar='FIELD=VALUE',
                   help="override one TrainConfig field of the config (repeatable), e.g. --set centering=sinkhorn_knopp --set lr=2e-4")
    p.add_argument('--also', type=lambda s: s.split(','), default=[], metavar='SETS',
                   help=f"probe the same start and adapted backbones on these labelled sets too: {', '.join(OTHER_SETS)} (comma-separated)")
    p.add_argument('--probe-scale', type=lambda s: [float(x) for x in s.split(',')], default=[], metavar='SCALES',
                   help="also probe whole sections (no resizing) at these working scales, comma-separated (1: native), by blended tiles "
                        "as ssl-dino-features extracts them; the resized probe's rows stay first")
    p.add_argument('--quick', '--dry-run', action='store_true', help="synthetic data and a tiny 3-epoch run: checks the whole path in about a minute")
    p.add_argument('--seeds', type=seed_list, default=None, metavar='SEEDS',
                   help="train each config once per training seed (comma-separated) and end with each set's gain over the seeds: a run's own "
                        "noise is larger than the probe's spread, so a recipe is judged over several")
    p.add_argument('--across-seeds', nargs='+', type=Path, default=None, metavar='JSONL',
                   help="train nothing: read the JSON lines of earlier runs (--json) and print each set's gain over their seeds")
    args = p.parse_args(argv)
    if args.across_seeds:
        missing = [str(f) for f in args.across_seeds if not f.is_file()]
        if missing: p.error(f"--across-seeds {', '.join(missing)}: no such file (give the files written with --json)")
        try: return log(across_seeds(read_json_lines(args.across_seeds, 'bench/adapt.py')))
        except ValueError as e: p.error(f"--across-seeds: {e}")
    if args.seeds and any(k == 'seed' for k, _ in args.set): p.error("--seeds and --set seed=...: give the seeds once")
    if args.seeds and len(set(args.seeds)) < len(args.seeds): p.error(f"--seeds {','.join(map(str, args.seeds))}: a seed is repeated")
    if unknown_sets := [s for s in args.also if s not in OTHER_SETS]: p.error(f"--also {', '.join(unknown_sets)}: choose from {', '.join(OTHER_SETS)}")
    if args.quick and args.also: p.error("--also probes the real labelled sets: leave it out with --quick")
    names = args.config.split(',')
    unknown = [n for n in names if n not in FROM_SCRATCH]
    if unknown: p.error(f"unknown config {', '.join(unknown)}: choose from {', '.join(FROM_SCRATCH)}")
    if args.out and len(names) > 1: p.error("--out takes one config; leave it out to get a folder per config")
    if args.quick:
        args.unlabeled, args.images, args.masks = write_quick_data(Path(tempfile.mkdtemp(prefix='adapt-quick-data-')))
    for option in ('unlabeled', 'images', 'masks'):
        if not getattr(args, option).exists():
            p.error(f"--{option} {getattr(args, option)} does not exist (see ../shared/data/vnc-gerhard2013/README.md), or use --quick")
    if args.target_class and args.class_names and args.target_class not in args.class_names:
        p.error(f"--target-class {args.target_class} is not one of --class-names {','.join(args.class_names)}")
    results = []
    for name in names:
        for seed in args.seeds or [None]:
            run_args = args if seed is None else argparse.Namespace(**{**vars(args), 'set': [*args.set, ('seed', seed)],
                                                                         'out': args.out and f"{args.out}-seed{seed}"})
            results.append(run_config(name, run_args))
            if args.json: append_json_line(args.json, 'bench/adapt.py', results[-1])
    log('\n' + summary_table(results))
    log("gain = adapted - start mean IoU on the same held-out images; ± = standard deviation over probe seeds x bootstrap "
        "resamples of the held-out images (paired for the gain); within noise = |gain| < 2 x its ±.")
    if args.seeds and len(args.seeds) > 1: log('\n' + across_seeds(results))

if __name__ == '__main__': main()
