"""The work of overparam's benchmark binaries, timed in PyTorch on the same machine.

Optional: run it only where PyTorch is installed (`pip install torch numpy`); nothing in the
project depends on it. It times, with the same sizes, dtypes and thread count as

- `cargo run --release -p overparam-experiments --bin bench_gram -- --skip-autodiff`:
  the per-layer Gram matrices of A's fc net (softplus, n = 1000, d = 100, m = 1024, H = 3,
  f64) by the structured formula G^(h) = (A_h A_hᵀ) ∘ (B_h B_hᵀ), G^(a) = X_H X_Hᵀ, and
  the same in f32 (`bench_gram --skip-autodiff --gram-dtype f32`);
- `cargo run --release -p overparam-experiments --bin bench_gd_step`: one full-batch GD step
  (forward, backward, update) of B's two-layer ReLU net (n = d = 1000, m = 8000, f32, W
  trained, a fixed) and of A's fc net (softplus, n = 1000, d = 100, m = 1024, H = 3, f64, all
  layers trained), with the papers' scalings and the quadratic loss ½‖f − y‖²;
- `cargo run --release -p overparam-experiments --bin bench_sgd_step`: one SGD step (batch
  128, forward, backward, momentum 0.9 update, cross-entropy, f32) of D's CIFAR-style
  ResNet-18 with BatchNorm in training mode, at width 16 on 1 × 28 × 28 and width 64 on
  3 × 32 × 32 images, 10 classes.

    python3 benchmarks/torch_reference.py [--threads 2] [--reps 5] [--only gram,gd,sgd]

Weights and data are drawn here (the timing does not depend on their values). Prints the
median seconds of each, in the same words as the Rust binaries.
"""

import argparse
import math
import statistics
import time

import numpy as np
import torch


def median_seconds(work, reps):
    work()  # warm-up
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def unit_rows(n, d, dtype, gen):
    x = torch.randn(n, d, dtype=dtype, generator=gen)
    return x / x.norm(dim=1, keepdim=True)


def c_sigma_softplus():
    """1 / E[softplus(z)^2], z ~ N(0, 1), by 120-point Gauss–Hermite (≈ 1.08549)."""
    z, w = np.polynomial.hermite_e.hermegauss(120)
    values = np.logaddexp(0.0, z) ** 2
    return 1.0 / (np.sum(w * values) / math.sqrt(2.0 * math.pi))


def fc_net(n, d, m, depth, dtype, gen):
    x = unit_rows(n, d, dtype, gen)
    y = torch.randn(n, 1, dtype=dtype, generator=gen)
    fan_in = [d] + [m] * (depth - 1)
    weights = [torch.randn(m, k, dtype=dtype, generator=gen) for k in fan_in]
    readout = torch.randn(1, m, dtype=dtype, generator=gen)
    return x, y, weights, readout


def fc_forward(x, weights, readout, scale, keep=None):
    """A eq. 2: x^(h) = sqrt(c_σ/m) σ(W^(h) x^(h−1)), f = aᵀ x^(H)."""
    h = x
    for w in weights:
        if keep is not None:
            keep.append(h)
        pre = h @ w.T
        if keep is not None:
            pre.retain_grad()
            keep.append(pre)
        h = torch.nn.functional.softplus(pre) * scale
    if keep is not None:
        keep.append(h)
    return h @ readout.T


def structured_gram(x, weights, readout, scale):
    keep = []
    f = fc_forward(x, weights, readout, scale, keep)
    f.sum().backward()
    grams = []
    with torch.no_grad():
        for layer in range(len(weights)):
            a, pre = keep[2 * layer], keep[2 * layer + 1]
            b = pre.grad
            grams.append((a @ a.T) * (b @ b.T))
        last = keep[-1]
        grams.append(last @ last.T)
    return grams


def gd_step(params, loss_fn, eta):
    loss = loss_fn()
    loss.backward()
    with torch.no_grad():
        for p in params:
            p -= eta * p.grad
            p.grad = None


class BasicBlock(torch.nn.Module):
    def __init__(self, c_in, c_out, stride):
        super().__init__()
        nn = torch.nn
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return torch.relu(out + shortcut)


class ResNet18(torch.nn.Module):
    """The CIFAR-style ResNet-18 of overparam's `resnet18` model (3 × 3 stem, no max-pool)."""

    def __init__(self, channels, width, classes):
        super().__init__()
        nn = torch.nn
        self.conv1 = nn.Conv2d(channels, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        blocks, c_in = [], width
        for stage in range(4):
            c_out = width << stage
            for block in range(2):
                stride = 2 if stage > 0 and block == 0 else 1
                blocks.append(BasicBlock(c_in, c_out, stride))
                c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(c_in, classes)

    def forward(self, x):
        h = self.blocks(torch.relu(self.bn1(self.conv1(x))))
        return self.fc(h.mean(dim=(2, 3)))


def sgd_step_seconds(width, shape, batch, reps, gen):
    net = ResNet18(shape[0], width, 10).train()
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    x = torch.rand(batch, *shape, generator=gen)
    y = torch.randint(0, 10, (batch,), generator=gen)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(net(x), y)
        loss.backward()
        opt.step()

    return median_seconds(step, reps)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--only", default="gram,gd,sgd", help="comma-separated parts to time")
    args = parser.parse_args()
    only = set(args.only.split(","))
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads, median of {args.reps}")

    if "sgd" in only:
        for width, shape in [(16, (1, 28, 28)), (64, (3, 32, 32))]:
            t = sgd_step_seconds(width, shape, 128, args.reps, gen)
            side = "x".join(map(str, shape))
            print(f"resnet18 width {width:<3} {side} batch 128: {t:9.3f} s")
    if "gram" in only:
        gram(args.reps, gen, torch.float64)
        gram(args.reps, gen, torch.float32)
    if "gd" in only:
        gd(args.reps, gen)


def gram(reps, gen, dtype):
    """Structured Gram, A's fc net, in `dtype`."""
    n, d, m, depth = 1000, 100, 1024, 3
    x, _, weights, readout = fc_net(n, d, m, depth, dtype, gen)
    scale = math.sqrt(c_sigma_softplus() / m)
    leaves = [w.requires_grad_() for w in weights] + [readout.requires_grad_()]
    t = median_seconds(lambda: structured_gram(x, weights, readout, scale), reps)
    name = str(dtype).removeprefix("torch.").replace("float", "f")
    print(f"structured Gram, A fc softplus n={n} d={d} m={m} H={depth} {name}: {t:.3f} s")


def gd(reps, gen):
    """One GD step of B's two-layer ReLU net (f32) and of A's fc net (f64)."""
    n, d, m = 1000, 1000, 8000
    xb = unit_rows(n, d, torch.float32, gen)
    yb = torch.randn(n, 1, dtype=torch.float32, generator=gen)
    w = torch.randn(m, d, dtype=torch.float32, generator=gen).requires_grad_()
    a = torch.where(torch.rand(m, 1, generator=gen) < 0.5, -1.0, 1.0).to(torch.float32)

    def two_layer_loss():
        f = torch.relu(xb @ w.T) @ a / math.sqrt(m)
        return 0.5 * ((f - yb) ** 2).sum()

    t = median_seconds(lambda: gd_step([w], two_layer_loss, 1e-3), reps)
    print(f"GD step, B two_layer n=d={n} m={m} f32: {t * 1e3:.0f} ms")

    # One GD step of A's fc net, all layers trained, f64.
    n, d, m, depth = 1000, 100, 1024, 3
    x, y, weights, readout = fc_net(n, d, m, depth, torch.float64, gen)
    leaves = [w_.requires_grad_() for w_ in weights] + [readout.requires_grad_()]

    def fc_loss():
        f = fc_forward(x, weights, readout, scale)
        return 0.5 * ((f - y) ** 2).sum()

    scale = math.sqrt(c_sigma_softplus() / m)
    t = median_seconds(lambda: gd_step(leaves, fc_loss, 1e-3), reps)
    print(f"GD step, A fc softplus n={n} d={d} m={m} H={depth} f64: {t * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
