#!/usr/bin/python3
"""PyTorch reference for bench/train-fashion-teacher.ts: the same small RS model (bench/model_torch.py's
ResNetRS, depth 26, width 0.25, small-input stem, grey, 10 classes) trained on the same 1,000 labeled
Fashion-MNIST images (the first 100 of each class of the train split) with the same recipe knobs:
SGD momentum 0.9, peak LR baseLr x batch/256, linear warm-up 5 epochs then cosine, label smoothing 0.1,
L2 weight decay on non-BN weights, random-resized crop + flip + torchvision RandAugment(2, M), dropout
0.1, EMA of weights and BN buffers with the TF warm-up rule. Evaluates the EMA model on the 10k test split.
Prints one RESULT line. /usr/bin/python3 (Debian python3-torch 1.13 + torchvision)."""
import argparse, copy, gzip, math, os, sys, time
import numpy as np
import torch
import torch.nn.functional as F
from torchvision import transforms as T
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model_torch import ResNetRS  # noqa: E402

D = '/usr/share/datasets/fashion-mnist'


def idx(split):
    with gzip.open(f'{D}/{split}-images-idx3-ubyte.gz') as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(f'{D}/{split}-labels-idx1-ubyte.gz') as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8)
    return x, y


ap = argparse.ArgumentParser()
ap.add_argument('--epochs', type=int, default=15)
ap.add_argument('--batch', type=int, default=128)
ap.add_argument('--lr', type=float, default=0.1)
ap.add_argument('--wd', type=float, default=4e-5)
ap.add_argument('--magnitude', type=int, default=5)
ap.add_argument('--min-area', type=float, default=0.35)
ap.add_argument('--warmup', type=float, default=5)
ap.add_argument('--threads', type=int, default=2)
a = ap.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)

x, y = idx('train')
pick, seen = [], [0] * 10
for i in range(len(y)):
    if seen[y[i]] < 100:
        seen[y[i]] += 1
        pick.append(i)
xs, ys = x[pick], torch.tensor(y[pick], dtype=torch.long)
MEAN, STD = 0.449, 0.226
aug = T.Compose([T.RandomResizedCrop(28, scale=(a.min_area, 1.0)), T.RandomHorizontalFlip(),
                 T.RandAugment(2, a.magnitude, fill=128), T.ToTensor(), T.Normalize([MEAN], [STD])])
model = ResNetRS(26, 0.25, channels=1, classes=10, small_input=True, dropout=0.1)
for m in model.modules():
    if isinstance(m, torch.nn.BatchNorm2d):
        m.momentum = 1.0  # TF bn_momentum 0: moving stats = last batch (the EMA averages them)
ema = copy.deepcopy(model)
decay_params = [p for n, p in model.named_parameters() if p.ndim > 1 or not any(isinstance(m, torch.nn.BatchNorm2d) for m in [dict(model.named_modules())[n.rsplit('.', 1)[0]]])]
other = [p for p in model.parameters() if all(p is not q for q in decay_params)]
opt = torch.optim.SGD([{'params': decay_params, 'weight_decay': a.wd}, {'params': other, 'weight_decay': 0}], lr=0.1, momentum=0.9)
spe = len(xs) // a.batch
total, warm = a.epochs * spe, max(1, round(a.warmup * spe))
peak = a.lr * a.batch / 256
t0, step = time.time(), 0
for ep in range(a.epochs):
    perm = torch.randperm(len(xs))
    model.train()
    for s in range(spe):
        idxs = perm[s * a.batch:(s + 1) * a.batch]
        xb = torch.stack([aug(Image.fromarray(xs[i])) for i in idxs.tolist()])
        lr = peak * step / warm if step < warm else 0.5 * peak * (1 + math.cos(math.pi * step / total))
        for g in opt.param_groups:
            g['lr'] = lr
        loss = F.cross_entropy(model(xb), ys[idxs], label_smoothing=0.1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        d = min(0.9999, (1 + step) / (10 + step))
        with torch.no_grad():
            for pe, pm in zip(ema.state_dict().values(), model.state_dict().values()):
                if pe.dtype.is_floating_point:
                    pe.mul_(d).add_(pm, alpha=1 - d)
                else:
                    pe.copy_(pm)
train_s = time.time() - t0
tx, ty = idx('t10k')
ema.eval()
correct = 0
with torch.no_grad():
    for b in range(0, len(ty), 500):
        # Eval crop as the tfjs side: centre 24/28 (S/(S+round(S/7))) then bicubic back to 28.
        xb = torch.stack([T.Compose([T.CenterCrop(24), T.Resize(28, T.InterpolationMode.BICUBIC), T.ToTensor(), T.Normalize([MEAN], [STD])])(Image.fromarray(im)) for im in tx[b:b + 500]])
        correct += (ema(xb).argmax(1) == torch.tensor(ty[b:b + 500], dtype=torch.long)).sum().item()
print(f'RESULT torch teacher epochs={a.epochs} steps={total} train_seconds={train_s:.0f} img/s={total * a.batch / train_s:.1f} test_acc={correct / len(ty):.4f}')
