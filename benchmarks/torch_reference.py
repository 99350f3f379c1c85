"""The work of overparam's benchmark binaries, timed in PyTorch on the same machine.

Optional: run it only where PyTorch is installed (`pip install torch numpy`); nothing in the
project depends on it. It times, with the same sizes, dtypes and thread count as

- `cargo run --release -p overparam-experiments --bin bench_gram -- --skip-autodiff`:
  the per-layer Gram matrices of A's fc net (softplus, n = 1000, d = 100, m = 1024, H = 3,
  f64) by the structured formula G^(h) = (A_h A_hᵀ) ∘ (B_h B_hᵀ), G^(a) = X_H X_Hᵀ;
- `cargo run --release -p overparam-experiments --bin bench_gd_step`: one full-batch GD step
  (forward, backward, update) of B's two-layer ReLU net (n = d = 1000, m = 8000, f32, W
  trained, a fixed) and of A's fc net (softplus, n = 1000, d = 100, m = 1024, H = 3, f64, all
  layers trained), with the papers' scalings and the quadratic loss ½‖f − y‖².

    python3 benchmarks/torch_reference.py [--threads 2] [--reps 5]

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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads, median of {args.reps}")

    # Structured Gram, A's fc net, f64.
    n, d, m, depth = 1000, 100, 1024, 3
    x, _, weights, readout = fc_net(n, d, m, depth, torch.float64, gen)
    scale = math.sqrt(c_sigma_softplus() / m)
    leaves = [w.requires_grad_() for w in weights] + [readout.requires_grad_()]
    t = median_seconds(lambda: structured_gram(x, weights, readout, scale), args.reps)
    print(f"structured Gram, A fc softplus n={n} d={d} m={m} H={depth} f64: {t:.3f} s")

    # One GD step of B's two-layer ReLU net, f32.
    n, d, m = 1000, 1000, 8000
    xb = unit_rows(n, d, torch.float32, gen)
    yb = torch.randn(n, 1, dtype=torch.float32, generator=gen)
    w = torch.randn(m, d, dtype=torch.float32, generator=gen).requires_grad_()
    a = torch.where(torch.rand(m, 1, generator=gen) < 0.5, -1.0, 1.0).to(torch.float32)

    def two_layer_loss():
        f = torch.relu(xb @ w.T) @ a / math.sqrt(m)
        return 0.5 * ((f - yb) ** 2).sum()

    t = median_seconds(lambda: gd_step([w], two_layer_loss, 1e-3), args.reps)
    print(f"GD step, B two_layer n=d={n} m={m} f32: {t * 1e3:.0f} ms")

    # One GD step of A's fc net, all layers trained, f64.
    n, d, m, depth = 1000, 100, 1024, 3
    x, y, weights, readout = fc_net(n, d, m, depth, torch.float64, gen)
    leaves = [w_.requires_grad_() for w_ in weights] + [readout.requires_grad_()]

    def fc_loss():
        f = fc_forward(x, weights, readout, scale)
        return 0.5 * ((f - y) ** 2).sum()

    t = median_seconds(lambda: gd_step(leaves, fc_loss, 1e-3), args.reps)
    print(f"GD step, A fc softplus n={n} d={d} m={m} H={depth} f64: {t * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
