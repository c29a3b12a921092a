"""The Monte Carlo linearised system of deep erf networks in vectorised numpy/scipy.

The alternative a user would write for `saddle solve --method linear` on many patterns
(benches/finite_width.rs, `cargo run --release --example linear_scaling`): L = 3, N = 100,
standardised MNIST 0 vs 3 digits, M common random numbers, the same algorithm as saddle's
expansion at the NNGP point (THEORY.md §4.4):
* per layer, once: h = z Lᵀ (Cholesky of C*⁽ˡ⁻¹⁾), φ, φ′, φ″ and the moments ⟨φ′φ′ᵀ⟩, ⟨φ″φᵀ⟩;
* per product: forward δC⁽ˡ⁾ = g[δK∘⟨φ′φ′ᵀ⟩ + ½(diag δK ⟨φ″φᵀ⟩ + ⟨φφ″ᵀ⟩ diag δK)
  + (1/M) Φᵀ diag(A − Ā) Φ] with A = (g/N) φᵀC̃⁽ˡ⁾φ per sample; backward
  C̃⁽ˡ⁾ = N ½⟨∇²A⁽ˡ⁺¹⁾⟩ (Price) and C̃⁽ᴸ⁾ = S_D⁽¹⁾ + H δC⁽ᴸ⁾;
* the affine system C̃ = g(0) + J C̃ solved by scipy's GMRES on (I − J), relative
  tolerance 10⁻³/√M (saddle's stopping rule for sampled runs).
Prints the wall time per solve and the products taken; compare with saddle's solve times.

    python3 benches/numpy_linearised.py [SAMPLES] [P …]     # default 100000, 100 200
"""
import gzip
import sys
import time

import numpy as np
from scipy.sparse.linalg import LinearOperator, gmres
from scipy.special import erf

G, GB, G0, GB0, N, KAPPA, L = 1.5, 0.1, 1.0, 0.1, 100.0, 0.1, 3
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


class Layer:
    """One population at the NNGP point: its samples and moments."""

    def __init__(self, k, z):
        h = z @ np.linalg.cholesky(k).T
        self.phi = erf(S * h)
        d1 = 2 * S / np.sqrt(np.pi) * np.exp(-(S * h) ** 2)
        d2 = -2 * S * S * h * d1
        m = len(z)
        self.kernel = G * self.phi.T @ self.phi / m + GB
        self.d1d1 = d1.T @ d1 / m
        self.d2phi = d2.T @ self.phi / m

    def forward(self, dk, ct):
        m = len(self.phi)
        a = (G / N) * np.einsum("ij,ij->i", self.phi @ ct, self.phi)
        a -= a.mean()
        diag = np.diag(dk)
        d = dk * self.d1d1 + 0.5 * (diag[:, None] * self.d2phi + self.d2phi.T * diag[None, :])
        d += (self.phi * a[:, None]).T @ self.phi / m
        return G * d

    def backward(self, ct):
        mm = (G / N) * ct
        second = mm * self.d1d1 + mm.T * self.d1d1.T
        second += np.diag((mm * self.d2phi).sum(1) + (mm.T * self.d2phi).sum(1))
        return N * (second + second.T) / 4


def solve(x, y, z):
    p = len(y)
    c0 = G0 * x @ x.T / x.shape[1] + GB0
    layers, kernels = [], [c0]
    for _ in range(L):
        layers.append(Layer(kernels[-1], z))
        kernels.append(layers[-1].kernel)
    a = np.linalg.inv(kernels[-1] + KAPPA * np.eye(p))
    ay = a @ y
    g0 = np.zeros((L, p, p))
    g0[-1] = 0.5 * (ay @ ay.T - a)

    def product(v):
        ct = v.reshape(L, p, p)
        dk = np.zeros((p, p))
        shifts = []
        for layer, c in zip(layers, ct):
            dk = layer.forward(dk, c)
            shifts.append(dk)
        out = np.empty_like(ct)
        for l in range(L - 1):
            out[l] = layers[l + 1].backward(ct[l + 1])
        d = shifts[-1]
        # H δC of the data term ½(AyyᵀA − A): its derivative in C⁽ᴸ⁾
        out[-1] = -0.5 * (a @ d @ ay @ ay.T + ay @ ay.T @ d @ a) + 0.5 * a @ d @ a
        return (v - out.ravel()), shifts

    count = [0]

    def apply(v):
        count[0] += 1
        return product(v)[0]

    operator = LinearOperator((L * p * p, L * p * p), matvec=apply)
    ct, info = gmres(operator, g0.ravel(), rtol=1e-3 / np.sqrt(len(z)), restart=20, maxiter=50)
    if info != 0:
        raise RuntimeError(f"GMRES did not converge ({info})")
    shifts = product(ct)[1]
    return shifts[-1], count[0]


def main():
    samples = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    sizes = [int(s) for s in sys.argv[2:]] or [100, 200]
    rng = np.random.default_rng(0)
    print(f"numpy/scipy, deep erf, L = {L}, N = {N:g}, M = {samples}")
    for p in sizes:
        x, y = digits(p)
        z = rng.standard_normal((samples, p))
        start = time.perf_counter()
        shift, products = solve(x, y, z)
        seconds = time.perf_counter() - start
        aligned = (N * shift * (y @ y.T)).sum() / p**2
        print(f"P = {p}: {seconds:.2f} s, {products} products, N·⟨δC⁽³⁾, yyᵀ⟩/P² = {aligned:.5f}")


if __name__ == "__main__":
    main()
