"""One importance-sampled forward-backward sweep of the deep erf MAP in vectorised numpy.

The alternative a user would write for `saddle solve --method map` on many patterns
(benches/finite_width.rs): L = 2, N = 100, P = 24/50/100 standardised MNIST 0 vs 3 digits,
M = 4000 common random numbers. Per population: h = z Lᵀ (Cholesky), φ = erf(√π/2 h),
tilt a = (g/N) φᵀC̃φ per sample, self-normalised weights; forward C = g φᵀdiag(w)φ + g_b;
backward by Price's theorem ½⟨∇²A + ∇A∇Aᵀ⟩ with ∇A = (2g/N) φ′⊙(C̃φ). A sweep is the
backward pass (the data term and layer 2's population with gradients; layer 1 reads the
fixed input kernel) and the forward pass (two populations), as in saddle.
Prints the time per sweep; divide saddle's time per solve by its sweep count to compare.

    python3 benches/numpy_feature_learning.py
"""
import gzip
import time

import numpy as np
from scipy.special import erf

G, GB, G0, GB0, N, KAPPA, M = 1.5, 0.1, 1.0, 0.1, 100.0, 0.1, 4000
S = np.sqrt(np.pi) / 2


def digits(p):
    img = gzip.open("data/mnist-10k-images-idx3-ubyte.gz").read()
    lab = gzip.open("data/mnist-10k-labels-idx1-ubyte.gz").read()
    x = np.frombuffer(img, np.uint8, offset=16).reshape(-1, 784).astype(float) / 255
    labels = np.frombuffer(lab, np.uint8, offset=8)
    zeros = np.flatnonzero(labels == 0)[: p // 2]
    threes = np.flatnonzero(labels == 3)[: p - p // 2]
    idx = np.concatenate([zeros, threes])
    x = x[idx]
    x = (x - x.mean(1, keepdims=True)) / x.std(1, keepdims=True)
    y = np.where(labels[idx] == 0, 1.0, -1.0)[:, None]
    return x, y


def population(k, ct, z, gradients):
    h = z @ np.linalg.cholesky(k).T
    phi = erf(S * h)
    ctphi = phi @ ct
    a = (G / N) * np.einsum("ij,ij->i", ctphi, phi)
    w = np.exp(a - a.max())
    w /= w.sum()
    forward = G * (phi * w[:, None]).T @ phi + GB
    if not gradients:
        return forward, None
    d1 = S * 2 / np.sqrt(np.pi) * np.exp(-(S * h) ** 2)
    d2 = -2 * S * S * h * d1
    grad = (2 * G / N) * d1 * ctphi
    second = (grad * w[:, None]).T @ grad
    second += (2 * G / N) * ct * ((d1 * w[:, None]).T @ d1)
    second += np.diag((2 * G / N) * (w @ (d2 * ctphi)))
    return forward, 0.5 * (second + second.T) / 2


def sweep(c0, c1, c2, ct1, ct2, y, z):
    a = np.linalg.inv(c2 + KAPPA * np.eye(len(y)))
    ay = a @ y
    new_ct2 = 0.5 * (ay @ ay.T - a)
    _, grad = population(c1, ct2, z, True)
    new_ct1 = N * grad  # n = N units, K = C⁽¹⁾: C̃⁽¹⁾ = N ∂ln Z/∂K
    ct1 = ct1 + 0.5 * (new_ct1 - ct1)
    ct2 = ct2 + 0.5 * (new_ct2 - ct2)
    c1, _ = population(c0, ct1, z, False)
    c2, _ = population(c1, ct2, z, False)
    return c1, c2, ct1, ct2


def main():
    rng = np.random.default_rng(0)
    for p in (24, 50, 100):
        x, y = digits(p)
        c0 = G0 * x @ x.T / x.shape[1] + GB0
        z = rng.standard_normal((M, p))
        c1, _ = population(c0, np.zeros((p, p)), z, False)
        c2, _ = population(c1, np.zeros((p, p)), z, False)
        ct1 = np.zeros((p, p))
        ct2 = np.zeros((p, p))
        state = (c1, c2, ct1, ct2)
        sweep(c0, *state, y, z)  # warm-up
        reps = 20
        start = time.perf_counter()
        for _ in range(reps):
            state = sweep(c0, *state, y, z)
        per = (time.perf_counter() - start) / reps
        print(f"numpy, deep erf P = {p}, M = {M}: {per * 1e3:.1f} ms per sweep")


if __name__ == "__main__":
    main()
