#!/usr/bin/env python
"""Does adaptation help? One DINO run of a fixed budget, then the dense segmentation probe before and after (issue 14).

For a named configuration (TrainConfig overrides, all in CONFIGS below) it trains with
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
import argparse, json, math, sys, tempfile, time
from dataclasses import fields
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path: sys.path.insert(0, str(ROOT))   # runs from a checkout without `pip install`

import numpy as np
import torch
from PIL import Image
from semisupervised_learning import core
from semisupervised_learning.evaluate import compare_backbones, format_table, load_labelled

VNC = ROOT.parent / 'shared' / 'data' / 'vnc-gerhard2013'
UNLABELED = VNC / 'stack2' / 'raw'                   # 20 unlabelled sections, for self-supervision
IMAGES, MASKS = VNC / 'stack1' / 'raw', VNC / 'stack1' / 'masks' / 'mitochondria'   # 20 labelled sections
CLASS_NAMES = ['other', 'mitochondria']
ISBI = ROOT.parent / 'shared' / 'data' / 'isbi2012' / 'train'
# the other labelled sets the same backbones are probed on with --also (name: images, masks, class names, the class reported)
OTHER_SETS = {'vnc-membrane': (IMAGES, VNC / 'stack1' / 'masks' / 'membrane', ['other', 'membrane'], 'membrane'),
              'isbi-membrane': (ISBI / 'images', ISBI / 'labels', ['membrane', 'interior'], 'membrane')}

# The recipes: TrainConfig overrides (see TrainConfig in semisupervised_learning/core.py), one place to edit.
CONFIGS = {
    # the tiny 2-block ViT from random weights, trained whole with core's RANDOM_INIT_RECIPE (iBOT + KoLeo without the DINO
    # CLS term, sharp teacher, no local crops, every layer at the full lr). 20 sections x 4 samples / batch 8 = 10 steps per
    # epoch, 400 epochs = 4000 steps: 9-15 minutes on the shared 2-core CPU, plus the pictures and the probe
    'cpu': dict(backbone='dinov2_tiny14', pretrained=False, **core.RANDOM_INIT_RECIPE, head_warmup_epochs=5,   # the recipe's lr, 5e-4
                epochs=400, warmup_epochs=10, batch_size=8, momentum_teacher=0.99, center_momentum=0.9,
                out_dim=256, hidden_dim=512, bottleneck_dim=128, global_size=224, samples_per_image=4,
                global_scale=(0.14, 0.35), num_workers=2, save_every=100, log_every=20, device='cpu'),
    # ViT-S/14 from random weights with the same recipe (with --weights: the pretrained-start defaults, see run_config).
    # 20 sections x 16 samples / batch 64 = 5 steps per epoch, 600 epochs = 3000 steps: estimated (not yet measured) at
    # 4-5 minutes on an H100 machine, where 8 loader workers (~800 images/s) rather than the GPU set the pace
    'gpu-vits': dict(backbone='dinov2_vits14', pretrained=False, **{**core.RANDOM_INIT_RECIPE, 'lr': 1e-3}, head_warmup_epochs=5,
                     epochs=600, warmup_epochs=10, batch_size=64, momentum_teacher=0.99, center_momentum=0.9,
                     out_dim=256, hidden_dim=2048, bottleneck_dim=256, global_size=224, samples_per_image=16,
                     global_scale=(0.14, 0.35), num_workers=8, save_every=200, log_every=20, device='cuda'),
}
BUDGET_MINUTES = {'cpu': 20, 'gpu-vits': 5}          # what each recipe must fit in (reported, not enforced)
# --quick: on top of the chosen config, a run that only checks the path (synthetic data, a minute on a CPU)
QUICK = dict(backbone='dinov2_tiny14', epochs=3, warmup_epochs=1, head_warmup_epochs=1, batch_size=8, lr=1e-3,
             out_dim=64, hidden_dim=128, bottleneck_dim=64, global_size=112, local_size=56, n_local_crops=2,
             num_workers=0, save_every=3, log_every=2, device='cpu', amp=None, compile=False)
# the probe, the same for every row: resize for the backbone, the first n_train images train it, the rest score it;
# with --probe-scale also whole sections at each working scale, by blended tiles as users get their features (ssl-dino-features)
PROBE = dict(size=448, n_train=10, seeds=3, n_bootstrap=1000)
QUICK_PROBE = dict(size=224, n_train=3, seeds=2, n_bootstrap=200)


def log(*a): print(*a, flush=True)

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
    images, masks = core.make_synthetic_em(6, 224, seed=7, return_masks=True)
    for sub in ('images', 'masks'): (folder / sub).mkdir(parents=True, exist_ok=True)
    for i, (image, mask) in enumerate(zip(images, masks)):
        Image.fromarray(image).save(folder / 'images' / f'{i}.png')
        Image.fromarray(np.where(mask, 255, 0).astype(np.uint8)).save(folder / 'masks' / f'{i}.png')
    return folder / 'unlabeled', folder / 'images', folder / 'masks'

def run_config(name:str, args) -> dict:
    "Train one configuration, probe its start and adapted backbones; returns what the summary and the JSON need."
    overrides = {**CONFIGS[name], **dict(args.set), **(QUICK if args.quick else {})}
    if args.weights:   # a pretrained start: TrainConfig's own defaults (LoRA, DINO + iBOT + KoLeo, ...) instead of the from-scratch recipe
        defaults = core.TrainConfig()
        overrides.update({k: getattr(defaults, k) for k in core.RANDOM_INIT_RECIPE if k != 'lr'}, weights=str(args.weights), pretrained=True,
                         backbone=CONFIGS[name]['backbone'])   # the file's architecture
        overrides.update({**dict(args.set), **(QUICK if args.quick else {})})
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
    probe = QUICK_PROBE if args.quick else PROBE
    data = load_labelled(args.images, args.masks, size=probe['size'])
    names = args.class_names or (['background', 'membrane'] if args.quick else CLASS_NAMES if args.masks == MASKS else [str(v) for v in data.class_values])
    t1 = time.time()
    backbones = {'start': start, 'adapted': result['outputs']['backbone']}
    comparison = compare_backbones(backbones, data[:probe['n_train']], data[probe['n_train']:],
                                   device=result['device'], progress=False, n_show=2 if args.figure else 0, seeds=probe['seeds'],
                                   n_bootstrap=probe['n_bootstrap'], class_names=names)
    if args.figure:
        comparison['figure'].savefig(args.figure, dpi=80)
        Image.open(args.figure).convert('RGB').quantize(colors=128).save(args.figure, optimize=True)   # a third of the size, for a repository
        log(f"figure: {args.figure} (true masks; per row: patch PCA and probe predictions)")
    probe_s = time.time() - t1
    log(f"\nprobe: {probe['n_train']} training and {len(data) - probe['n_train']} held-out images of {args.images}, {probe['size']} px resized, "
        f"{probe['seeds']} seeds x {probe['n_bootstrap']} resamples")
    log(format_table(comparison['rows'], names))
    rows = {r['backbone']: r for r in comparison['rows']}
    if args.target_class and args.target_class not in names: raise SystemExit(f"error: --target-class {args.target_class} is not one of {', '.join(names)}")
    k = names.index(args.target_class) if args.target_class else len(names) - 1      # the class the summary reports
    def probe_set(set_name, images, masks, set_classes, target, scale=None):
        "One more labelled set, or the same one at a working scale: the summary's numbers for start and adapted."
        t = time.time()
        other = load_labelled(images, masks, size=probe['size'], scale=scale)
        rows_other = {r['backbone']: r for r in compare_backbones(backbones, other[:probe['n_train']], other[probe['n_train']:], device=result['device'],
                      progress=False, n_show=0, seeds=probe['seeds'], n_bootstrap=probe['n_bootstrap'], class_names=set_classes)['rows']}
        how = f"whole sections at scale {scale:g} by tiles" if scale else f"{probe['size']} px resized"
        log(f"\nprobe on {set_name}, {how}: {probe['n_train']} training and {len(other) - probe['n_train']} held-out images ({time.time() - t:.0f} s)")
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
    others = [probe_set(*labelled, scale=scale) for scale in args.probe_scale for labelled in sets[:1]]
    others += [probe_set(*labelled, scale=scale) for scale in [None, *args.probe_scale] for labelled in sets[1:]]
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
    "One line per configuration: start, adapted, gain ± spread, the baselines, wall time, health."
    header = ['config', 'start mIoU', 'adapted mIoU', 'gain', '', 'filter bank', 'majority', 'target class IoU: start -> adapted (filter bank)',
              'train', 'probe', 'health warnings']
    lines = [[r['config'] + (' (quick)' if r['quick'] else ''), f"{r['start']:.3f}±{r['start_std']:.3f}", f"{r['adapted']:.3f}±{r['adapted_std']:.3f}",
              f"{r['gain']:+.3f}±{r['gain_std']:.3f}", 'within noise' if r['within_noise'] else 'beyond noise',
              f"{r['filter_bank']:.3f}", f"{r['majority']:.3f}",
              f"{r['target_class']}: {r['target_start']:.3f} -> {r['target_adapted']:.3f} ±{r['target_std']:.3f} ({r['target_filter_bank']:.3f})",
              f"{r['train_s'] / 60:.1f} min" + (f" (budget {r['budget_min']})" if r['budget_min'] else ''), f"{r['probe_s']:.0f} s",
              '; '.join(r['health']) or 'none'] for r in results]
    lines += [[f"{r['config']} on {o['set']}" + (f" ({o['probe']})" if o.get('probe') else ''), f"{o['start']:.3f}±{o['start_std']:.3f}", f"{o['adapted']:.3f}±{o['adapted_std']:.3f}",
               f"{o['gain']:+.3f}±{o['gain_std']:.3f}", 'within noise' if o['within_noise'] else 'beyond noise', f"{o['filter_bank']:.3f}",
               f"{o['majority']:.3f}", f"{o['target_class']}: {o['target_start']:.3f} -> {o['target_adapted']:.3f} ±{o['target_std']:.3f} "
               f"({o['target_filter_bank']:.3f})", '', '', ''] for r in results for o in r.get('others', [])]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines)]
    fmt = lambda cells: '  '.join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()
    return '\n'.join([fmt(header), '  '.join('-' * w for w in widths)] + [fmt(l) for l in lines])

def setting(text:str) -> tuple:
    "A `FIELD=VALUE` option as (field, value): numbers, true/false and null as JSON, anything else as a string."
    field, sep, value = text.partition('=')
    if not sep or field not in {f.name for f in fields(core.TrainConfig)}:
        raise argparse.ArgumentTypeError(f"{text!r}: expected FIELD=VALUE with a TrainConfig field (see semisupervised_learning/core.py)")
    try: return field, json.loads(value)
    except json.JSONDecodeError: return field, value

RUN_KEYS = ('config', 'quick', 'overrides', 'gain', 'gain_std')    # what a --json line of this script holds, at least

def across_seeds(results:list) -> str:
    "Per configuration, data, precision, labelled set and probe, over runs that differ only in their training seed: each run's gain, their mean ± the seeds' standard deviation (which holds the training noise the probe's spread leaves out), and how many lost beyond their probe spread."
    groups = {}
    for r in results:
        train, probe_precision = r.get('train_precision', '?'), r.get('probe_precision', '?')     # '?': lines written before they were recorded
        config = (' '.join(w for w in r['config'].split() if not w.startswith('seed=')) + (' quick' if r['quick'] else '')
                  + (f" from {Path(r['data']).name}" if r.get('data') else '') + (f" ({train})" if train == probe_precision else f" (train {train}, probe {probe_precision})"))
        main = dict(set='main set' + (f" ({'/'.join(Path(r['images']).parts[-2:])})" if r.get('images') else ''),
                    probe=f"{(QUICK_PROBE if r['quick'] else PROBE)['size']} px resized", gain=r['gain'], gain_std=r['gain_std'])
        for o in [main, *r.get('others', [])]:
            set_name = main['set'] if o['set'] == 'main set' else o['set']          # the main set's other probes carry its plain name
            runs, seed = groups.setdefault((config, set_name, o['probe']), []), r['overrides'].get('seed', 0)
            if any(seed == other for other, _, _ in runs):
                raise ValueError(f"{config}, {set_name}, {o['probe']}: seed {seed} appears twice (the same run given twice?)")
            runs.append((seed, o['gain'], o['gain_std']))
    header = ['config', 'set', 'probe', 'runs', 'gain per seed', 'mean ± seeds\' sd', 'lost beyond the probe spread']
    lines = [[config, set_name, probe, len(runs), ' '.join(f"{g:+.3f}" for _, g, _ in sorted(runs)),
              f"{np.mean([g for _, g, _ in runs]):+.3f}" + (f" ±{np.std([g for _, g, _ in runs], ddof=1):.3f}" if len(runs) > 1 else ' (one run)'),
              f"{sum(g < -2 * sd for _, g, sd in runs)} of {len(runs)}"] for (config, set_name, probe), runs in groups.items()]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines)]
    fmt = lambda cells: '  '.join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()
    return '\n'.join([fmt(header), '  '.join('-' * w for w in widths)] + [fmt(l) for l in lines])

def seed_list(text:str) -> list[int]:
    "--seeds: comma-separated whole numbers."
    try: return [int(x) for x in text.split(',')]
    except ValueError: raise argparse.ArgumentTypeError(f"{text!r}: give whole numbers separated by commas, e.g. 0,1,2") from None

def read_runs(files:list) -> list[dict]:
    "The runs in --json files, each line checked: a line another script wrote is refused with its file and line number."
    runs = []
    for f in files:
        for n, line in enumerate(f.read_text().splitlines(), 1):
            if not line.strip(): continue
            try: run = json.loads(line)
            except json.JSONDecodeError as e: raise ValueError(f"{f}:{n}: not JSON ({e.msg})") from None
            if not isinstance(run, dict) or (missing := [k for k in RUN_KEYS if k not in run]):
                raise ValueError(f"{f}:{n}: not a line written by bench/adapt.py --json (no {', '.join(missing) if isinstance(run, dict) else 'object'})")
            runs.append(run)
    return runs

def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if 'cpu-pretrained' in argv or '--config=cpu-pretrained' in argv:   # the pretrained-start study (issue 26): its own script and options
        import pretrained_start
        return pretrained_start.main([a for a in argv if a not in ('--config', 'cpu-pretrained', '--config=cpu-pretrained')])
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument('--config', default='cpu', help=f"one or more of {', '.join(CONFIGS)}, comma-separated")
    p.add_argument('--weights', default=None, help="start from these pretrained weights (Meta's dinov2_*_pretrain.pth or an adapted_backbone.pth)")
    p.add_argument('--unlabeled', type=Path, default=UNLABELED, help="folder of unlabelled EM images to adapt on")
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
        try: return log(across_seeds(read_runs(args.across_seeds)))
        except ValueError as e: p.error(f"--across-seeds: {e}")
    if args.seeds and any(k == 'seed' for k, _ in args.set): p.error("--seeds and --set seed=...: give the seeds once")
    if args.seeds and len(set(args.seeds)) < len(args.seeds): p.error(f"--seeds {','.join(map(str, args.seeds))}: a seed is repeated")
    if unknown_sets := [s for s in args.also if s not in OTHER_SETS]: p.error(f"--also {', '.join(unknown_sets)}: choose from {', '.join(OTHER_SETS)}")
    if args.quick and args.also: p.error("--also probes the real labelled sets: leave it out with --quick")
    names = args.config.split(',')
    unknown = [n for n in names if n not in CONFIGS]
    if unknown: p.error(f"unknown config {', '.join(unknown)}: choose from {', '.join(CONFIGS)}")
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
            if args.json:
                with open(args.json, 'a') as f: f.write(json.dumps(results[-1]) + '\n')
    log('\n' + summary_table(results))
    log("gain = adapted - start mean IoU on the same held-out images; ± = standard deviation over probe seeds x bootstrap "
        "resamples of the held-out images (paired for the gain); within noise = |gain| < 2 x its ±.")
    if args.seeds and len(args.seeds) > 1: log('\n' + across_seeds(results))

if __name__ == '__main__': main()
