"""The same elliptical slice sampler as `saddle simulate` (benches/simulate.rs), in numpy.

Deep erf network, L = 2, N = 200, P = 50 standardised MNIST digits (the bundled IDX file),
g = 1.5, gb = 0.1, g0 = 1, gb0 = 0.1, kappa = 0.1: state Z (one N×P standard-normal matrix per
layer), fields C1 = g/N φ(H0)ᵀφ(H0) + gb with H0 = Z0 chol(C0)ᵀ, C2 likewise from C1, likelihood
N(y; 0, C2 + κI). Prints seconds per draw (forward pass) and per ESS step, and likelihood
evaluations per step, for the ratio against `cargo bench --bench simulate`.
"""
import gzip, time
import numpy as np
from scipy.special import erf

def load(p):
    with gzip.open("data/mnist-10k-images-idx3-ubyte.gz") as f:
        x = np.frombuffer(f.read()[16:], dtype=np.uint8).reshape(-1, 784)[:p].astype(float)
    with gzip.open("data/mnist-10k-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read()[8:], dtype=np.uint8)[:p]
    x = (x - x.mean(1, keepdims=True)) / x.std(1, keepdims=True)
    y = np.where(labels % 2 == 0, 1.0, -1.0)[:, None]
    return x, y

g, gb, g0, gb0, kappa, N, L = 1.5, 0.1, 1.0, 0.1, 0.1, 200, 2
x, y = load(50)
P = x.shape[0]
c0 = g0 / x.shape[1] * x @ x.T + gb0
phi = lambda h: erf(np.sqrt(np.pi) / 2 * h)

def fields(z):
    c = c0
    for l in range(L):
        h = z[l] @ np.linalg.cholesky(c).T
        f = phi(h)
        c = g / N * f.T @ f + gb
    return c

def loglik(z):
    k = fields(z) + kappa * np.eye(P)
    lo = np.linalg.cholesky(k)
    b = np.linalg.solve(lo, y)  # triangular solve as a dense one: as a user would write it
    return -0.5 * (b * b).sum() - np.log(np.diag(lo)).sum() - 0.5 * P * np.log(2 * np.pi)

rng = np.random.default_rng(0)
z = [rng.standard_normal((N, P)) for _ in range(L)]
t = time.perf_counter(); reps = 200
for _ in range(reps):
    fields(z)
draw = (time.perf_counter() - t) / reps
ll, steps, evals = loglik(z), 400, 0
t = time.perf_counter()
for _ in range(steps):
    nu = [rng.standard_normal((N, P)) for _ in range(L)]
    level = ll + np.log(rng.uniform())
    theta = rng.uniform(0, 2 * np.pi); lo_, hi_ = theta - 2 * np.pi, theta
    while True:
        prop = [a * np.cos(theta) + b * np.sin(theta) for a, b in zip(z, nu)]
        evals += 1
        lp = loglik(prop)
        if lp > level:
            z, ll = prop, lp
            break
        if theta < 0: lo_ = theta
        else: hi_ = theta
        theta = rng.uniform(lo_, hi_)
step = (time.perf_counter() - t) / steps
print(f"numpy: one draw {draw*1e3:.3f} ms, one ESS step {step*1e3:.3f} ms, "
      f"{evals/steps:.2f} likelihood evaluations per step")
