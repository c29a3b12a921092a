#!/usr/bin/env python3
"""Side-by-side: a vectorised numpy closed-form NNGP against saddle, compute time only.

Depth-10 networks with the defaults of examples/deep_erf.action (unit-slope erf; g = 1.5,
gb = 0.1) and examples/deep_relu.action (g = 2, gb = 0.1), both with g0 = 1, gb0 = 0.1, on
the first P bundled MNIST digits standardised per pattern. Both sides start from the
standardised digits in memory and stop at the last-layer kernel in memory: numpy is timed
around `numpy_kernel`, saddle by `examples/nngp_timing.rs` around `nngp_kernels` (which also
derives the equations from the parsed theory, a few ms). No file I/O is timed on either side.
The two sides take turns, REPEATS rounds of two numpy runs and one saddle process with two
runs (the first run of each warms up: page faults, thread pools, caches), so that a slow
spell of a shared machine hits both: each side's best is shown with their ratio, the median
of the per-round ratios (best of two against best of two), and the largest relative
difference between the two kernels.

Needs python3 with numpy; not part of CI. Build first:
`cargo build --release --example nngp_timing`.
Usage: `python3 benches/numpy_nngp.py [--repeats N] [P ...]` (default P = 1000 4000 10000).
"""
import argparse
import gzip
import os
import subprocess
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEPTH, G0, GB0 = 10, 1.0, 0.1
NETWORKS = {"erf": (1.5, 0.1), "relu": (2.0, 0.1)}  # (g, gb)
S2 = np.pi / 4.0  # s² for erf(√π x / 2)


def mnist(p):
    with gzip.open(os.path.join(ROOT, "data", "mnist-10k-images-idx3-ubyte.gz")) as f:
        raw = f.read()
    n, rows, cols = (int.from_bytes(raw[i:i + 4], "big") for i in (4, 8, 12))
    x = np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(n, rows * cols)[:p]
    x = x.astype(np.float64) / 255.0
    return (x - x.mean(axis=1, keepdims=True)) / x.std(axis=1, keepdims=True)


def numpy_kernel(x, network):
    g, gb = NETWORKS[network]
    c = G0 / x.shape[1] * (x @ x.T) + GB0
    for _ in range(DEPTH):
        if network == "erf":
            r = 1.0 / np.sqrt(1.0 + 2.0 * S2 * np.diag(c))
            c = g * (2.0 / np.pi) * np.arcsin(2.0 * S2 * c * r[:, None] * r[None, :]) + gb
        else:
            root = np.sqrt(np.diag(c))
            norm = root[:, None] * root[None, :]
            rho = np.clip(c / norm, -1.0, 1.0)
            theta = np.arccos(rho)
            c = g * norm / (2.0 * np.pi) * (np.sqrt(1.0 - rho * rho) + (np.pi - theta) * rho) + gb
    return c


def numpy_time(x, network):
    """Best of two runs of `numpy_kernel`, and its kernel."""
    best = float("inf")
    for _ in range(2):
        started = time.perf_counter()
        kernel = numpy_kernel(x, network)
        best = min(best, time.perf_counter() - started)
    return best, kernel


def saddle_time(binary, network, p, kout=None):
    """Best of two runs of `nngp_timing` in one process, and its other timings."""
    command = [binary, network, str(p), "2"] + ([kout] if kout else [])
    line = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    fields = dict(f.split("=") for f in line.split()[1:])
    return float(fields["nngp_best_s"]), fields


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[1000, 4000, 10000])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.repeats < 1:
        raise SystemExit("--repeats must be at least 1")
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    binary = os.path.join(target, "release", "examples", "nngp_timing")
    if not os.path.exists(binary):
        raise SystemExit("build first: cargo build --release --example nngp_timing")
    for p in args.sizes:
        x = mnist(p)
        for network in NETWORKS:
            numpy_times, saddle_times = [], []
            with tempfile.TemporaryDirectory() as tmp:
                kout = os.path.join(tmp, "k.npy")
                for r in range(args.repeats):
                    t, k_numpy = numpy_time(x, network)
                    numpy_times.append(t)
                    t, fields = saddle_time(binary, network, p, kout if r == 0 else None)
                    saddle_times.append(t)
                k_saddle = np.load(kout)
            worst = np.max(np.abs(k_saddle - k_numpy) / np.abs(k_numpy))
            t_numpy, t_saddle = min(numpy_times), min(saddle_times)
            median = float(np.median(np.array(numpy_times) / np.array(saddle_times)))
            print(f"{network:4s} P = {p:5d}: numpy {t_numpy:7.3f} s   saddle {t_saddle:7.3f} s   "
                  f"numpy/saddle = {t_numpy / t_saddle:5.2f} (median of rounds {median:5.2f})   "
                  f"max relative difference {worst:.1e}   "
                  f"(saddle X X^T alone {float(fields['xxt_sym_best_s']):.3f} s)", flush=True)


if __name__ == "__main__":
    main()
