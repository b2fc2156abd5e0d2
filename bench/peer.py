#!/usr/bin/python3
"""peer.py - the PyTorch peer of bench/bench.c: the same steps, shapes and settings on synthetic
data, so that bench/peer.sh can report time and peak-RSS ratios ours / PyTorch.

Usage: /usr/bin/python3 bench/peer.py --case resnet32|lenet|mwn|rotation|lft
           [--method none|evograd|unrolled] [--threads N] [--steps N] [--lft-size S]
           [--backbone resnet10|resnet18|resnet34] [--header]
One (case, method) per process. stdout: one CSV row `case,method,threads,ms,peak_rss_mb` (ms: the
median wall time of one step or iteration after warm-up; peak RSS from getrusage). stderr: one
human line (parameters, GFLOP from the layer shapes, torch version, threads).

The networks are written as functions of a dict of parameter tensors (no nn.Module), so that the
meta-steps can run them at other points (perturbed copies, look-ahead weights) and choose the
batch-norm mode per pass as the C does: 'train' (batch statistics, running statistics updated),
'frozen' (batch statistics, running statistics untouched: LAYER_MODE_TRAIN_FROZEN) and 'eval'
(running statistics; FT layers off). The kernels are the ones nn.Conv2d etc. call. Layout: the
default NCHW (what a typical user writes; channels_last was not used). Float32 on the CPU.

Where the C computes a hypergradient in closed form, this file writes what a PyTorch user writes:
  evograd  K copies theta + eps_k (Rademacher +-sigma, as hyper.c), their training losses, softmax
           weights of -loss / tau, theta* = sum_k w_k theta_k, the validation loss at theta* and
           autograd back to lambda (first order: the weights depend on lambda through the losses).
  unrolled the exact one-step look-ahead: grad with create_graph=True, theta' = theta - alpha g,
           validation loss at theta', second-order autograd back to lambda (the C instead takes
           a DARTS finite difference: two more first-order passes, no second-order graph).
"""
import argparse
import resource
import statistics
import sys
import time

import torch
import torch.nn.functional as F

# The C bench's settings (bench.c): evograd K = 2, sigma 1e-3, tau 0.05.
K, SIGMA, TAU = 2, 1e-3, 0.05
BN_EPS, BN_MOMENTUM = 1e-5, 0.1

# ---------------------------------------------------------------------------------------------
# FLOPs from the layer shapes, counted as bench.c's step_flops does: per layer the forward count
# (conv 2*Cout*Cin*k*k per output + 1 with a bias, linear 2*out*in, batch norm 7, ReLU and add 1,
# FT 2 per element; pooling 0), backward 2x forward, 1x for the layer reading the images.
# While FL is a list, the layer functions below append (forward flops, reads the images).

FL = None


def count(f, first=False):
    if FL is not None:
        FL.append((float(f), first))


def counted(fn):
    """GFLOP of one forward + backward of fn() (run once under no_grad to read the shapes)."""
    global FL
    FL = []
    with torch.no_grad():
        fn()
    f = sum(3.0 * v - (v if first else 0.0) for v, first in FL)
    FL = None
    return f * 1e-9


def conv(x, w, b=None, stride=1, pad=0, first=False):
    y = F.conv2d(x, w, b, stride, pad)
    count(y.numel() * (2 * w[0].numel() + (b is not None)), first)
    return y


def linear(x, w, b=None):
    count(2 * w.numel() * x.shape[0])
    return F.linear(x, w, b)


def relu(x):
    count(x.numel())
    return F.relu(x)


def add(a, b):
    count(a.numel())
    return a + b


def bn(x, p, bufs, name, mode):
    """Batch norm `name` in mode train / frozen / eval (see the top comment)."""
    count(7 * x.numel())
    w, b = p[name + '.w'], p[name + '.b']
    if mode == 'eval':
        return F.batch_norm(x, bufs[name + '.rm'], bufs[name + '.rv'], w, b, False, 0.0, BN_EPS)
    if mode == 'train' and bufs is not None and name + '.rm' in bufs:
        return F.batch_norm(x, bufs[name + '.rm'], bufs[name + '.rv'], w, b, True, BN_MOMENTUM,
                            BN_EPS)
    return F.batch_norm(x, None, None, w, b, True, 0.0, BN_EPS)


def ft(x, lam, name, mode):
    """LFT's feature-wise transformation (lib/nn/ft.c): in training modes fresh N(0, 1) noise per
    channel, y = (1 + n_g sp(gamma)) x + n_b sp(beta), sp = softplus(beta=100); eval: identity."""
    if mode == 'eval':
        return x
    count(2 * x.numel())
    c = x.shape[1]
    ng, nb = torch.randn(1, c, 1, 1), torch.randn(1, c, 1, 1)
    a = 1.0 + ng * F.softplus(lam[name + '.g'], beta=100).view(1, c, 1, 1)
    return x * a + nb * F.softplus(lam[name + '.b'], beta=100).view(1, c, 1, 1)


def maxpool(x, k, stride, pad=0):
    return F.max_pool2d(x, k, stride, pad)


def xent(logits, y, reduction='mean'):
    return F.cross_entropy(logits, y, reduction=reduction)

# ---------------------------------------------------------------------------------------------
# Parameters: dicts of leaf tensors (initialisation as the C; the cost does not depend on it).


def conv_w(p, name, co, ci, k, fan='in'):
    w = torch.empty(co, ci, k, k)
    torch.nn.init.kaiming_normal_(w, mode='fan_' + fan)
    p[name] = w


def linear_w(p, name, out, inp, bias=True):
    bound = 1.0 / inp ** 0.5  # nn.Linear's default ranges
    p[name] = torch.empty(out, inp).uniform_(-bound, bound)
    if bias:
        p[name + 'b'] = torch.empty(out).uniform_(-bound, bound)


def bn_p(p, bufs, name, c, track=True):
    p[name + '.w'], p[name + '.b'] = torch.ones(c), torch.zeros(c)
    if track:
        bufs[name + '.rm'], bufs[name + '.rv'] = torch.zeros(c), torch.ones(c)


def leaves(p):
    for t in p.values():
        t.requires_grad_(True)
    return p


def nparams(p):
    return sum(t.numel() for t in p.values())


def combine(w, thetas):
    """EvoGrad's theta* = sum_k w_k theta_k, per tensor."""
    out = {}
    for n in thetas[0]:
        acc = w[0] * thetas[0][n]
        for k in range(1, len(thetas)):
            acc = acc + w[k] * thetas[k][n]
        out[n] = acc
    return out

# ---------------------------------------------------------------------------------------------
# CIFAR ResNet-32 (backbones.c build_resnet32): conv3x3 3->16 + BN + ReLU, 3 stages x 5 basic
# blocks at 16/32/64, option-A shortcuts (stride-2 subsample, zero channels each side), global
# average pool, FC 64 -> 10. No conv biases.


def resnet32_new(classes=10):
    p, bufs = {}, {}
    conv_w(p, 'conv1', 16, 3, 3)
    bn_p(p, bufs, 'bn1', 16)
    cin = 16
    for s, planes in enumerate((16, 32, 64)):
        for b in range(5):
            n = f's{s}b{b}'
            conv_w(p, n + '.c1', planes, cin, 3)
            bn_p(p, bufs, n + '.bn1', planes)
            conv_w(p, n + '.c2', planes, planes, 3)
            bn_p(p, bufs, n + '.bn2', planes)
            cin = planes
    p['fc'] = torch.nn.init.kaiming_normal_(torch.empty(classes, 64))
    p['fcb'] = torch.zeros(classes)
    return leaves(p), bufs


def shortcut_a(x, planes, stride):
    if stride != 1:
        x = x[:, :, ::stride, ::stride]
    pad = (planes - x.shape[1]) // 2
    return F.pad(x, (0, 0, 0, 0, pad, pad))


def resnet32_fwd(p, bufs, x, mode):
    h = relu(bn(conv(x, p['conv1'], pad=1, first=True), p, bufs, 'bn1', mode))
    cin = 16
    for s, planes in enumerate((16, 32, 64)):
        for b in range(5):
            n, stride = f's{s}b{b}', 2 if b == 0 and s > 0 else 1
            y = relu(bn(conv(h, p[n + '.c1'], stride=stride, pad=1), p, bufs, n + '.bn1', mode))
            y = bn(conv(y, p[n + '.c2'], pad=1), p, bufs, n + '.bn2', mode)
            sc = h if stride == 1 and cin == planes else shortcut_a(h, planes, stride)
            h = relu(add(y, sc))
            cin = planes
    return linear(h.mean((2, 3)), p['fc'], p['fcb'])

# ---------------------------------------------------------------------------------------------
# LeNet (backbones.c build_lenet): conv5x5 1->6 pad 2 + bias, ReLU, maxpool 2; conv5x5 6->16 +
# bias, ReLU, maxpool 2; flatten; FC 400->120, ReLU, FC 120->84, ReLU, FC 84->10.


def lenet_new(classes=10):
    p = {}
    for name, co, ci in (('c1', 6, 1), ('c2', 16, 6)):
        bound = 1.0 / (ci * 25) ** 0.5
        p[name] = torch.empty(co, ci, 5, 5).uniform_(-bound, bound)
        p[name + 'b'] = torch.empty(co).uniform_(-bound, bound)
    linear_w(p, 'f1', 120, 400)
    linear_w(p, 'f2', 84, 120)
    linear_w(p, 'f3', classes, 84)
    return leaves(p)


def lenet_fwd(p, x):
    h = maxpool(relu(conv(x, p['c1'], p['c1b'], pad=2, first=True)), 2, 2)
    h = maxpool(relu(conv(h, p['c2'], p['c2b'])), 2, 2).flatten(1)
    h = relu(linear(h, p['f1'], p['f1b']))
    h = relu(linear(h, p['f2'], p['f2b']))
    return linear(h, p['f3'], p['f3b'])

# ---------------------------------------------------------------------------------------------
# Timing


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def median_ms(step, warmup, steps):
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def gaussian_batch(n, shape, classes):
    return torch.randn(n, *shape), torch.randint(0, classes, (n,))


def rademacher_like(t):
    # +-sigma; randint was the fastest of torch's draws here (bernoulli_ took 1.7x as long)
    return torch.randint_like(t, 0, 2).mul_(2.0 * SIGMA).sub_(SIGMA)

# ---------------------------------------------------------------------------------------------
# resnet32 / lenet: one plain training step (bench.c run_case: SGD lr 0.01, momentum 0.9,
# Nesterov, weight decay 5e-4; 3 warm-up steps).


def case_plain(args):
    if args.case == 'resnet32':
        p, bufs = resnet32_new()
        x, y = gaussian_batch(100, (3, 32, 32), 10)
        fwd = lambda: resnet32_fwd(p, bufs, x, 'train')
    else:
        p = lenet_new()
        x, y = gaussian_batch(128, (1, 28, 28), 10)
        fwd = lambda: lenet_fwd(p, x)
    opt = torch.optim.SGD(p.values(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)

    def step():
        opt.zero_grad()
        xent(fwd(), y).backward()
        opt.step()

    gflop = counted(fwd)
    ms = median_ms(step, 3, args.steps or (15 if args.case == 'resnet32' else 60))
    info = f'batch {x.shape[0]}, {nparams(p)} parameters, {gflop:.2f} GFLOP per step'
    return ms, info

# ---------------------------------------------------------------------------------------------
# mwn: one Meta-Weight-Net iteration (tasks/mwn.c mwn_step) on resnet32, training and meta batch
# of 100: (1) the meta-step on the weighting network V (1-100-1, 301 parameters) at the current
# theta, its SGD step (lr 1e-3, Nesterov 0.9, wd 5e-4), (2) the base step (SGD lr 0.1, Nesterov
# 0.9, wd 5e-4) with the updated V's weights. The meta-step's passes use batch statistics without
# touching the running ones ('frozen'); unrolled alpha 0.1 (bench_hyper_params).


def vnet_new(h=100):
    v = {'w1': torch.empty(h, 1).uniform_(-1, 1), 'b1': torch.empty(h).uniform_(-1, 1)}
    bound = 1.0 / h ** 0.5
    v['w2'] = torch.empty(1, h).uniform_(-bound, bound)
    v['b2'] = torch.empty(1).uniform_(-bound, bound)
    return leaves(v)


def vnet_fwd(v, c):
    return torch.sigmoid(F.linear(F.relu(F.linear(c.unsqueeze(1), v['w1'], v['b1'])),
                                  v['w2'], v['b2'])).squeeze(1)


def weighted_loss(c, w):
    # sum_i c_i w_i / sum_j w_j (a sigmoid's sum is > 0, so lib's S = 0 guard never fires)
    return (c * w).sum() / w.sum()


def case_mwn(args):
    p, bufs = resnet32_new()
    v = vnet_new()
    x, y = gaussian_batch(100, (3, 32, 32), 10)
    xv, yv = gaussian_batch(100, (3, 32, 32), 10)
    opt = torch.optim.SGD(p.values(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    vopt = torch.optim.SGD(v.values(), lr=1e-3, momentum=0.9, nesterov=True, weight_decay=5e-4)
    alpha = 0.1

    def set_vgrad(loss):
        for t, g in zip(v.values(), torch.autograd.grad(loss, list(v.values()))):
            t.grad = g

    def meta_evograd():
        with torch.no_grad():  # the copies' losses: V's input is detached anyway
            thetas = [{n: t + rademacher_like(t) for n, t in p.items()} for _ in range(K)]
            cs = [xent(resnet32_fwd(th, bufs, x, 'frozen'), y, 'none') for th in thetas]
        losses = torch.stack([weighted_loss(c, vnet_fwd(v, c)) for c in cs])
        w = torch.softmax(-losses / TAU, 0)
        star = combine(w, thetas)
        set_vgrad(xent(resnet32_fwd(star, bufs, xv, 'frozen'), yv))
        vopt.step()

    def meta_unrolled():
        c = xent(resnet32_fwd(p, bufs, x, 'frozen'), y, 'none')
        loss = weighted_loss(c, vnet_fwd(v, c.detach()))
        g = torch.autograd.grad(loss, list(p.values()), create_graph=True)
        ahead = {n: t - alpha * gi for (n, t), gi in zip(p.items(), g)}
        set_vgrad(xent(resnet32_fwd(ahead, bufs, xv, 'frozen'), yv))
        vopt.step()

    meta = {'none': None, 'evograd': meta_evograd, 'unrolled': meta_unrolled}[args.method]

    def step():
        if meta is not None:
            meta()
        opt.zero_grad()
        c = xent(resnet32_fwd(p, bufs, x, 'train'), y, 'none')
        with torch.no_grad():
            w = vnet_fwd(v, c)
        weighted_loss(c, w).backward()
        opt.step()

    gflop = counted(lambda: resnet32_fwd(p, bufs, x, 'train'))
    ms = median_ms(step, 2, args.steps or 6)
    info = (f'resnet32 {nparams(p)} parameters, V {nparams(v)}, batch 100 + meta 100, '
            f'{gflop:.2f} GFLOP per forward + backward of one batch')
    return ms, info

# ---------------------------------------------------------------------------------------------
# rotation: one iteration of tasks/rotation.c rotation_step on LeNet, training and validation
# batch of 128 1x28x28: (1) the base Adam step (1e-3) on the training batch rotated by the angle,
# (2) the hypergradient on the angle around the updated weights, (3) Adam (1e-2) on the angle.
# Unrolled alpha = the base lr 1e-3. The angle starts at 0 (as bench.c).


def rotate(x, a):
    """nn/rotate.c: affine_grid + grid_sample, bilinear, zeros padding, align_corners=False."""
    c, s, z = torch.cos(a), torch.sin(a), torch.zeros_like(a)
    theta = torch.stack((torch.cat((c, -s, z)), torch.cat((s, c, z)))).unsqueeze(0)
    grid = F.affine_grid(theta.expand(x.shape[0], 2, 3), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode='bilinear', padding_mode='zeros', align_corners=False)


def case_rotation(args):
    p = lenet_new()
    x, y = gaussian_batch(128, (1, 28, 28), 10)
    xv, yv = gaussian_batch(128, (1, 28, 28), 10)
    angle = torch.zeros(1, requires_grad=True)
    opt = torch.optim.Adam(p.values(), lr=1e-3)
    aopt = torch.optim.Adam([angle], lr=1e-2)
    alpha = 1e-3

    def set_agrad(loss):
        angle.grad, = torch.autograd.grad(loss, [angle])

    def meta_evograd():
        xr = rotate(x, angle)  # one rotation shared by the K copies (the C rotates per copy)
        with torch.no_grad():
            thetas = [{n: t + rademacher_like(t) for n, t in p.items()} for _ in range(K)]
        losses = torch.stack([xent(lenet_fwd(th, xr), y) for th in thetas])
        w = torch.softmax(-losses / TAU, 0)
        star = combine(w, thetas)
        set_agrad(xent(lenet_fwd(star, xv), yv))
        aopt.step()

    def meta_unrolled():
        loss = xent(lenet_fwd(p, rotate(x, angle)), y)
        g = torch.autograd.grad(loss, list(p.values()), create_graph=True)
        ahead = {n: t - alpha * gi for (n, t), gi in zip(p.items(), g)}
        set_agrad(xent(lenet_fwd(ahead, xv), yv))
        aopt.step()

    meta = {'none': None, 'evograd': meta_evograd, 'unrolled': meta_unrolled}[args.method]

    def step():
        opt.zero_grad()
        xent(lenet_fwd(p, rotate(x, angle.detach())), y).backward()
        opt.step()
        if meta is not None:
            meta()

    gflop = counted(lambda: lenet_fwd(p, x))
    ms = median_ms(step, 2, args.steps or 30)
    info = (f'lenet {nparams(p)} parameters, angle 1, batch 128 + validation 128, '
            f'{gflop:.3f} GFLOP per forward + backward of one batch')
    return ms, info

# ---------------------------------------------------------------------------------------------
# lft: one LFT iteration (tasks/lft.c lft_step). Encoder: CloserLookFewShot ResNet (conv7x7/2 +
# BN + ReLU, maxpool 3/2, SimpleBlocks at 64-128-256-512, stride 2 and a 1x1 conv + BN shortcut
# when the width changes; FT after each block's second BN and after the shortcut BN). RelationNet
# module on the 512 x h x w maps (relation.c), aux classifier (avgpool, FC 512-512-512-64).
# theta = encoder weights + relation module; lambda = the FT gammas and betas.
# (1) aux loss, encoder in eval mode; (2) PS episode in train mode; (3) Adam 1e-3 on encoder,
# relation and classifier; (4) unless none: the hypergradient around the updated theta on the PS
# ('frozen', FT noise on) and PU ('eval') episodes and Adam 1e-3 (wd 1e-8) on lambda.

WAY, SHOT, QUERIES, AUX_BATCH, AUX_CLASSES, REL_HIDDEN = 5, 5, 16, 16, 64, 8
DEPTHS = {'resnet10': (1, 1, 1, 1), 'resnet18': (2, 2, 2, 2), 'resnet34': (3, 4, 6, 3)}


def ft_p(lam, name, c):
    lam[name + '.g'], lam[name + '.b'] = torch.full((c,), 0.3), torch.full((c,), 0.5)  # ft.c


def encoder_new(depth):
    p, lam, bufs = {}, {}, {}
    conv_w(p, 'conv1', 64, 3, 7, 'out')
    bn_p(p, bufs, 'bn1', 64)
    cin = 64
    for st, nb in enumerate(depth):
        planes = 64 << st
        for b in range(nb):
            n = f'l{st}b{b}'
            conv_w(p, n + '.c1', planes, cin, 3, 'out')
            bn_p(p, bufs, n + '.bn1', planes)
            conv_w(p, n + '.c2', planes, planes, 3, 'out')
            bn_p(p, bufs, n + '.bn2', planes)
            ft_p(lam, n + '.ft2', planes)
            if cin != planes:
                conv_w(p, n + '.sc', planes, cin, 1, 'out')
                bn_p(p, bufs, n + '.scbn', planes)
                ft_p(lam, n + '.ftsc', planes)
            cin = planes
    return p, lam, bufs


def encoder_fwd(depth, p, lam, bufs, x, mode):
    h = relu(bn(conv(x, p['conv1'], stride=2, pad=3, first=True), p, bufs, 'bn1', mode))
    h = maxpool(h, 3, 2, 1)
    cin = 64
    for st, nb in enumerate(depth):
        planes = 64 << st
        for b in range(nb):
            n, stride = f'l{st}b{b}', 2 if b == 0 and st > 0 else 1
            y = relu(bn(conv(h, p[n + '.c1'], stride=stride, pad=1), p, bufs, n + '.bn1', mode))
            y = bn(conv(y, p[n + '.c2'], pad=1), p, bufs, n + '.bn2', mode)
            y = ft(y, lam, n + '.ft2', mode)
            sc = h
            if cin != planes:
                sc = bn(conv(h, p[n + '.sc'], stride=stride), p, bufs, n + '.scbn', mode)
                sc = ft(sc, lam, n + '.ftsc', mode)
            h = relu(add(y, sc))
            cin = planes
    return h


def relation_new(p, c, h, w):
    """Relation module params into p ('r.' names); pad 1 for maps under 10x10, pool 2 only on
    maps of at least 2x2 (relation.c). Returns its padding."""
    pad = 1 if h < 10 and w < 10 else 0
    for i, ci in ((1, 2 * c), (2, c)):
        conv_w(p, f'r.c{i}', c, ci, 3, 'out')
        bound = 1.0 / (ci * 9) ** 0.5
        p[f'r.c{i}b'] = torch.empty(c).uniform_(-bound, bound)
        bn_p(p, None, f'r.bn{i}', c, track=False)
        h, w = h + 2 * pad - 2, w + 2 * pad - 2
        if h >= 2 and w >= 2:
            h, w = h // 2, w // 2
    linear_w(p, 'r.f1', REL_HIDDEN, c * h * w)
    linear_w(p, 'r.f2', 1, REL_HIDDEN)
    return pad


def relation_fwd(p, pad, x):
    for i in (1, 2):
        x = relu(bn(conv(x, p[f'r.c{i}'], p[f'r.c{i}b'], pad=pad), p, None, f'r.bn{i}', 'frozen'))
        if x.shape[2] >= 2 and x.shape[3] >= 2:
            x = maxpool(x, 2, 2)
    x = relu(linear(x.flatten(1), p['r.f1'], p['r.f1b']))
    return linear(x, p['r.f2'], p['r.f2b'])


def case_lft(args):
    depth, size = DEPTHS[args.backbone], args.lft_size
    enc, lam, bufs = encoder_new(depth)
    with torch.no_grad():
        feat = encoder_fwd(depth, enc, lam, bufs, torch.zeros(1, 3, size, size), 'eval').shape[1:]
    rel = {}
    pad = relation_new(rel, *feat)
    aux = {}
    linear_w(aux, 'a1', 512, 512)
    linear_w(aux, 'a2', 512, 512)
    linear_w(aux, 'a3', AUX_CLASSES, 512)
    theta = leaves({**enc, **rel})  # one dict of the meta-problem's theta (shared tensors)
    leaves(lam)
    leaves(aux)
    n_ep = WAY * (SHOT + QUERIES)
    xs, xu = torch.randn(n_ep, 3, size, size), torch.randn(n_ep, 3, size, size)
    xa, ya = gaussian_batch(AUX_BATCH, (3, size, size), AUX_CLASSES)
    labels = torch.arange(WAY).repeat_interleave(QUERIES)
    opt = torch.optim.Adam([*theta.values(), *aux.values()], lr=1e-3)
    fopt = torch.optim.Adam(lam.values(), lr=1e-3, weight_decay=1e-8)
    alpha = 1e-3

    def episode(th, x, mode):
        f = encoder_fwd(depth, th, lam, bufs, x, mode)
        fs, fq = f[:WAY * SHOT], f[WAY * SHOT:]
        proto = fs.reshape(WAY, SHOT, *f.shape[1:]).mean(1)
        q = fq.shape[0]  # pair (i, j) = [proto_j ; query_i], row i * WAY + j
        pairs = torch.cat((proto.unsqueeze(0).expand(q, *proto.shape),
                           fq.unsqueeze(1).expand(q, WAY, *fq.shape[1:])), 2)
        scores = relation_fwd(th, pad, pairs.reshape(q * WAY, 2 * f.shape[1], *f.shape[2:]))
        return xent(scores.view(q, WAY), labels)

    def aux_fwd():
        f = encoder_fwd(depth, theta, lam, bufs, xa, 'eval').mean((2, 3))
        h = relu(linear(relu(linear(f, aux['a1'], aux['a1b'])), aux['a2'], aux['a2b']))
        return linear(h, aux['a3'], aux['a3b'])

    def set_lamgrad(loss):
        for t, g in zip(lam.values(), torch.autograd.grad(loss, list(lam.values()))):
            t.grad = g

    def meta_evograd():
        with torch.no_grad():
            thetas = [{n: t + rademacher_like(t) for n, t in theta.items()} for _ in range(K)]
        losses = torch.stack([episode(th, xs, 'frozen') for th in thetas])
        w = torch.softmax(-losses / TAU, 0)
        star = combine(w, thetas)
        set_lamgrad(episode(star, xu, 'eval'))
        fopt.step()

    def meta_unrolled():
        g = torch.autograd.grad(episode(theta, xs, 'frozen'), list(theta.values()),
                                create_graph=True)
        ahead = {n: t - alpha * gi for (n, t), gi in zip(theta.items(), g)}
        set_lamgrad(episode(ahead, xu, 'eval'))
        fopt.step()

    meta = {'none': None, 'evograd': meta_evograd, 'unrolled': meta_unrolled}[args.method]

    def step():
        opt.zero_grad()
        xent(aux_fwd(), ya).backward()            # (1), aux weight 1
        episode(theta, xs, 'train').backward()    # (2); its FT gradients are not used
        opt.step()                                # (3)
        if meta is not None:                      # (4)
            meta()

    gflop = counted(lambda: (aux_fwd(), episode(theta, xs, 'train')))
    ms = median_ms(step, 1, args.steps or 2)
    info = (f'{args.backbone} 3x{size}x{size}: {nparams(theta) + nparams(lam) + nparams(aux)} '
            f'parameters (P_enc {nparams(enc)}, P_rel {nparams(rel)}, aux {nparams(aux)}, '
            f'FT H {nparams(lam)}), {gflop:.2f} GFLOP per base step (aux + PS episode, '
            f'forward + backward)')
    return ms, info

# ---------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description='PyTorch peer of evograd-bench')
    ap.add_argument('--case', required=True,
                    choices=('resnet32', 'lenet', 'mwn', 'rotation', 'lft'))
    ap.add_argument('--method', default='none', choices=('none', 'evograd', 'unrolled'))
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--steps', type=int, default=0, help='timed steps (0: the C case default)')
    ap.add_argument('--lft-size', type=int, default=224)
    ap.add_argument('--backbone', default='resnet10', choices=tuple(DEPTHS))
    ap.add_argument('--header', action='store_true')
    args = ap.parse_args()
    if args.case in ('resnet32', 'lenet') and args.method != 'none':
        ap.error(f'{args.case} has method none only')

    torch.set_num_threads(args.threads)  # intra-op threads; inter-op ones are unused here
    torch.manual_seed(1)
    base_rss = peak_rss_mb()
    run = {'resnet32': case_plain, 'lenet': case_plain, 'mwn': case_mwn,
           'rotation': case_rotation, 'lft': case_lft}[args.case]
    ms, info = run(args)
    rss = peak_rss_mb()
    name = f'lft-{args.backbone}' if args.case == 'lft' else args.case
    if args.header:
        print('case,method,threads,ms,peak_rss_mb')
    print(f'{name},{args.method},{args.threads},{ms:.3f},{rss:.1f}', flush=True)
    print(f'peer {name} {args.method}: {info}; torch {torch.__version__}, '
          f'{torch.get_num_threads()} threads; {ms:.2f} ms, peak RSS {rss:.1f} MB '
          f'({base_rss:.0f} MB after import torch)', file=sys.stderr)


if __name__ == '__main__':
    main()
