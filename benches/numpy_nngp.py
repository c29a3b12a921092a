#!/usr/bin/env python3
"""Side-by-side: a vectorised numpy closed-form erf NNGP against `saddle kernel`.

Depth-10 unit-slope erf network (the defaults of examples/deep_erf.action: g = 1.5, gb = 0.1,
g0 = 1, gb0 = 0.1) on the first P bundled MNIST digits, standardised per pattern. Prints both
wall-clock times, their ratio and the largest relative difference between the two kernels.
Runs where python3 with numpy exists; not part of CI. Build saddle first:
`cargo build --release`. Usage: `python3 benches/numpy_nngp.py [P ...]`.
"""
import gzip
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
G, GB, G0, GB0, DEPTH = 1.5, 0.1, 1.0, 0.1, 10
S2 = np.pi / 4.0  # s² for erf(√π x / 2)


def mnist(p):
    with gzip.open(os.path.join(ROOT, "data", "mnist-10k-images-idx3-ubyte.gz")) as f:
        raw = f.read()
    n, rows, cols = (int.from_bytes(raw[i:i + 4], "big") for i in (4, 8, 12))
    x = np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(n, rows * cols)[:p].astype(np.float64) / 255.0
    x = (x - x.mean(axis=1, keepdims=True)) / x.std(axis=1, keepdims=True)
    return x


def numpy_kernel(x):
    c = G0 / x.shape[1] * (x @ x.T) + GB0
    for _ in range(DEPTH):
        d = 1.0 + 2.0 * S2 * np.diag(c)
        r = 1.0 / np.sqrt(d)
        c = G * (2.0 / np.pi) * np.arcsin(2.0 * S2 * c * r[:, None] * r[None, :]) + GB
    return c


def main():
    sizes = [int(a) for a in sys.argv[1:]] or [1000, 4000]
    binary = os.path.join(ROOT, "target", "release", "saddle")
    if not os.path.exists(binary):
        sys.exit("build saddle first: cargo build --release")
    for p in sizes:
        x = mnist(p)
        started = time.perf_counter()
        k_numpy = numpy_kernel(x)
        t_numpy = time.perf_counter() - started
        with tempfile.TemporaryDirectory() as tmp:
            xin, kout = os.path.join(tmp, "x.npy"), os.path.join(tmp, "k.npy")
            np.save(xin, x)
            command = [binary, "kernel", os.path.join(ROOT, "examples", "deep_erf.action"),
                       "--x", xin, "--set", f"L={DEPTH}", "--out", kout]
            started = time.perf_counter()
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
            t_saddle = time.perf_counter() - started
            k_saddle = np.load(kout)
        worst = np.max(np.abs(k_saddle - k_numpy) / np.abs(k_numpy))
        print(f"P = {p:5d}: numpy {t_numpy:7.3f} s   saddle {t_saddle:7.3f} s (whole command, with I/O)   "
              f"numpy/saddle = {t_numpy / t_saddle:5.2f}   max relative difference {worst:.1e}")


if __name__ == "__main__":
    main()
