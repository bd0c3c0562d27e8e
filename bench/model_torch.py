#!/usr/bin/python3
"""PyTorch side of bench/model.ts: the same ResNet-RS architecture as pipeline/model/, timed on CPU.

Run by bench/model.ts with /usr/bin/python3 (Debian python3-torch 1.13). Prints one JSON line:
parameter counts (to show the architecture matches the tfjs build exactly) and images/s for
  - RS-50 @160 inference (eval mode, no_grad), batch 8
  - the small Fashion-MNIST variant (depth 26, width 0.25, small-input stem, 28x28x1, 10 classes)
    one SGD-momentum training step, batch 128
Medians of `--repeats` timed runs after warm-up, as images per wall-clock second and per CPU-second
(all threads; robust to other load on a shared machine). Threads: torch.set_num_threads(--threads) (2 = all
cores here).

Architecture notes (matching architecture.ts): 3x3 stride-2 convs with padding 1 equal TF "fixed
padding"; ResNet-D shortcut avg pool = ceil_mode, count_include_pad=False (TF 'same' pooling);
BN eps 1e-5; SE ratio 0.25 of the block output with biases; zero-init gamma on each block's last BN.
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

LAYOUTS = {26: [2, 2, 2, 2], 50: [3, 4, 6, 3], 101: [3, 4, 23, 3], 152: [3, 8, 36, 3], 200: [3, 24, 36, 3]}


def conv_bn(cin, cout, k, stride, zero_gamma=False):
    bn = nn.BatchNorm2d(cout, eps=1e-5)
    if zero_gamma:
        nn.init.zeros_(bn.weight)
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, padding=k // 2, bias=False), bn)


class SE(nn.Module):
    def __init__(self, c, r):
        super().__init__()
        self.reduce = nn.Conv2d(c, r, 1, bias=True)
        self.expand = nn.Conv2d(r, c, 1, bias=True)

    def forward(self, x):
        s = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.expand(F.relu(self.reduce(s))))


class Bottleneck(nn.Module):
    def __init__(self, cin, width, stride, project):
        super().__init__()
        out = 4 * width
        self.conv1 = conv_bn(cin, width, 1, 1)
        self.conv2 = conv_bn(width, width, 3, stride)
        self.conv3 = conv_bn(width, out, 1, 1, zero_gamma=True)
        self.se = SE(out, max(1, int(0.25 * out)))
        self.shortcut = None
        if project:
            layers = []
            if stride == 2:
                layers.append(nn.AvgPool2d(2, 2, ceil_mode=True, count_include_pad=False))
            layers.append(conv_bn(cin, out, 1, 1))
            self.shortcut = nn.Sequential(*layers)

    def forward(self, x):
        y = F.relu(self.conv1(x))
        y = F.relu(self.conv2(y))
        y = self.se(self.conv3(y))
        return F.relu(y + (x if self.shortcut is None else self.shortcut(x)))


class ResNetRS(nn.Module):
    def __init__(self, depth, width=1.0, channels=3, classes=1000, small_input=False, dropout=0.25):
        super().__init__()
        w = lambda c: max(1, round(c * width))
        stem_stride = 1 if small_input else 2
        self.stem = nn.Sequential(
            conv_bn(channels, w(32), 3, stem_stride), nn.ReLU(),
            conv_bn(w(32), w(32), 3, 1), nn.ReLU(),
            conv_bn(w(32), w(64), 3, 1), nn.ReLU(),
            conv_bn(w(64), w(64), 3, 2), nn.ReLU(),  # released configs: conv in place of the max pool
        )
        blocks, cin = [], w(64)
        for s, n in enumerate(LAYOUTS[depth]):
            width_s = w([64, 128, 256, 512][s])
            for b in range(n):
                blocks.append(Bottleneck(cin, width_s, 2 if (b == 0 and s > 0) else 1, b == 0))
                cin = 4 * width_s
        self.blocks = nn.Sequential(*blocks)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.fc(self.dropout(x.mean((2, 3))))


def params(m):
    return sum(p.numel() for p in m.parameters() if p.requires_grad)


def timed(fn, images, warmup, repeats):
    for _ in range(warmup):
        fn()
    rates, cpu_rates = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        fn()
        rates.append(images / (time.perf_counter() - t))
        # process_time sums every thread's CPU: images per CPU-second is robust to a shared machine.
        cpu_rates.append(images / max(1e-9, time.process_time() - c))
    return statistics.median(rates), statistics.median(cpu_rates)


def load_tfjs_weights(model, directory):
    """Copies weights exported by test/model/torch-parity.test.ts (index.json + weights.bin, tfjs
    layer names and layouts) into `model`, mapping names and transposing to PyTorch layouts."""
    import os
    import numpy as np
    with open(os.path.join(directory, 'index.json')) as f:
        index = json.load(f)
    blob = np.fromfile(os.path.join(directory, 'weights.bin'), dtype=np.float32)
    by_name = torch_params_by_tfjs_name(model, index)
    for e in index['weights']:
        a = blob[e['offset']:e['offset'] + int(np.prod(e['shape']))].reshape(e['shape'])
        if e['name'].endswith('/kernel'):
            a = a.T if a.ndim == 2 else a.transpose(3, 2, 0, 1)
        by_name[e['name']].data = torch.from_numpy(a.copy())
    return index


def tfjs_layout(name, tensor):
    """A PyTorch weight (or its gradient) in the tfjs layout of the weight named `name`."""
    t = tensor.detach().cpu().numpy()
    if name.endswith('/kernel'):
        return t.T if t.ndim == 2 else t.transpose(2, 3, 1, 0)
    return t


def torch_params_by_tfjs_name(model, index):
    """tfjs weight name -> the PyTorch parameter or buffer holding it (the inverse of load_tfjs_weights)."""
    out = {}

    def conv(mod, name):
        out[name + '/kernel'] = mod.weight
        if mod.bias is not None:
            out[name + '/bias'] = mod.bias

    def bn(mod, name):
        for attr, key in (('weight', 'gamma'), ('bias', 'beta'), ('running_mean', 'moving_mean'), ('running_var', 'moving_variance')):
            out[f'{name}/{key}'] = getattr(mod, attr)

    for i, (c, b) in enumerate([('stem_conv1', 'stem_bn1'), ('stem_conv2', 'stem_bn2'), ('stem_conv3', 'stem_bn3'), ('stem_pool_conv', 'stem_pool_bn')]):
        conv(model.stem[2 * i][0], c)
        bn(model.stem[2 * i][1], b)
    names = [f's{s + 1}b{b + 1}' for s, n in enumerate(index['blocks']) for b in range(n)]
    for block, name in zip(model.blocks, names):
        for j in (1, 2, 3):
            conv(getattr(block, f'conv{j}')[0], f'{name}_conv{j}')
            bn(getattr(block, f'conv{j}')[1], f'{name}_bn{j}')
        conv(block.se.reduce, f'{name}_se_reduce')
        conv(block.se.expand, f'{name}_se_expand')
        if block.shortcut is not None:
            cb = block.shortcut[-1]
            conv(cb[0], f'{name}_short_conv')
            bn(cb[1], f'{name}_short_bn')
    out['logits/kernel'] = model.fc.weight
    out['logits/bias'] = model.fc.bias
    return out


def parity(directory, train=False):
    """Builds the architecture described in index.json, loads the tfjs weights and runs the
    exported NHWC input through it. Eval mode: prints the logits. Training mode (`train`): batch
    statistics in BN, cross-entropy against labels.bin, one backward pass; prints loss and logits and
    writes grads.bin: the gradient of every trainable weight, in index.json's order and tfjs layout."""
    import os
    import numpy as np
    with open(os.path.join(directory, 'index.json')) as f:
        index = json.load(f)
    a = index['arch']
    LAYOUTS.setdefault(a['depth'], a['blocks'])
    model = ResNetRS(a['depth'], a['widthMultiplier'], a['inputChannels'], a['classes'], a['smallInput'], a['dropoutRate'])
    model.train(train)
    load_tfjs_weights(model, directory)
    x = torch.from_numpy(np.fromfile(os.path.join(directory, 'input.bin'), dtype=np.float32).reshape(index['inputShape']).transpose(0, 3, 1, 2).copy())
    if not train:
        with torch.no_grad():
            y = model(x)
        print(json.dumps({'params': params(model), 'logits': y.flatten().tolist()}))
        return
    labels = torch.from_numpy(np.fromfile(os.path.join(directory, 'labels.bin'), dtype=np.int32).astype(np.int64))
    import copy
    model64 = copy.deepcopy(model).double()
    out = {'params': params(model)}
    # float32 like tfjs, and float64: the float64 gradients tell how much of any float32 difference is
    # rounding (grads.bin, grads64.bin).
    for m, inp, suffix in ((model, x, ''), (model64, x.double(), '64')):
        y = m(inp)
        loss = F.cross_entropy(y, labels)
        loss.backward()
        by_name = torch_params_by_tfjs_name(m, index)
        grads = [tfjs_layout(e['name'], by_name[e['name']].grad).astype(np.float32).ravel() for e in index['weights'] if e.get('trainable')]
        np.concatenate(grads).tofile(os.path.join(directory, f'grads{suffix}.bin'))
        out['loss' + suffix] = loss.item()
        out['logits' + suffix] = y.detach().flatten().tolist()
    print(json.dumps(out))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--parity', metavar='DIR', help='load tfjs-exported weights from DIR and print logits')
    ap.add_argument('--train', action='store_true', help='with --parity: training mode, one backward pass, gradients to DIR/grads.bin')
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--repeats', type=int, default=5)
    ap.add_argument('--infer-batch', type=int, default=8)
    ap.add_argument('--train-batch', type=int, default=128)
    ap.add_argument('--skip-infer', action='store_true')
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.parity:
        return parity(args.parity, args.train)
    torch.manual_seed(0)
    out = {'torch': torch.__version__, 'threads': torch.get_num_threads()}

    rs50 = ResNetRS(50).eval()
    out['rs50_params'] = params(rs50)
    if not args.skip_infer:
        x = torch.randn(args.infer_batch, 3, 160, 160)

        def infer():
            with torch.no_grad():
                rs50(x)

        out['rs50_infer_ips'], out['rs50_infer_cpu_ips'] = timed(infer, args.infer_batch, 2, args.repeats)
    del rs50

    small = ResNetRS(26, width=0.25, channels=1, classes=10, small_input=True, dropout=0.1).train()
    out['small_params'] = params(small)
    opt = torch.optim.SGD(small.parameters(), lr=0.05, momentum=0.9)
    xb = torch.rand(args.train_batch, 1, 28, 28)
    yb = torch.randint(0, 10, (args.train_batch,))

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(small(xb), yb)
        loss.backward()
        opt.step()

    out['small_train_ips'], out['small_train_cpu_ips'] = timed(step, args.train_batch, 2, args.repeats)
    print(json.dumps(out))


if __name__ == '__main__':
    main()
