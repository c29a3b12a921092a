"""The Langevin update of `saddle simulate --sampler langevin` (benches/simulate.rs), in numpy.

Deep erf network, L = 2, N = 500, P = 200 standardised MNIST digits (the bundled IDX file),
d = 784, g = 1.5, gb = 0.1, g0 = 1, gb0 = 0.1, kappa = 0.1; standard-normal weights, features
as rows: F0 the input features, H1 = W1 F0, F1 = [sqrt(g/N) phi(H1); sqrt(gb) 1], H2 = W2 F1,
F2 likewise, output f = F2^T a; U = |Y - f|^2 / (2 kappa) + |theta|^2 / 2; one step
theta <- theta - eps grad U + sqrt(2 eps) xi (forward, backpropagation, update).

Two input layers, both the same dynamics of the pre-activations:
* "factor": F0 = L^T with L L^T = C0 (P x P, what saddle does: the weights in an orthonormal
  basis of the inputs' row space plus the bias);
* "raw": F0 = [sqrt(g0/d) X^T; sqrt(gb0) 1] (785 x P), the weights on the pixels, as a user
  would write the network.
Prints milliseconds per step for each, for the ratio against `cargo bench --bench simulate`.
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

g, gb, g0, gb0, kappa, N = 1.5, 0.1, 1.0, 0.1, 0.1, 500
x, y = load(200)
P, d = x.shape
s = np.sqrt(np.pi) / 2
phi = lambda h: erf(s * h)
dphi = lambda h: 2 * s / np.sqrt(np.pi) * np.exp(-(s * h) ** 2)

def features(h):
    return np.vstack([np.sqrt(g / N) * phi(h), np.sqrt(gb) * np.ones((1, P))])

def step(theta, f0, eps, rng):
    w1, w2, a = theta
    h1 = w1 @ f0
    f1 = features(h1)
    h2 = w2 @ f1
    f2 = features(h2)
    out = f2.T @ a
    d_out = (out - y) / kappa
    grad_a = f2 @ d_out + a
    d_f2 = a @ d_out.T
    d_h2 = np.sqrt(g / N) * dphi(h2) * d_f2[:N]
    grad_w2 = d_h2 @ f1.T + w2
    d_f1 = w2.T @ d_h2
    d_h1 = np.sqrt(g / N) * dphi(h1) * d_f1[:N]
    grad_w1 = d_h1 @ f0.T + w1
    noise = np.sqrt(2 * eps)
    return [t - eps * gr + noise * rng.standard_normal(t.shape)
            for t, gr in zip(theta, (grad_w1, grad_w2, grad_a))]

c0 = g0 / d * x @ x.T + gb0
inputs = {
    "factor": np.linalg.cholesky(c0 + 1e-12 * np.eye(P)).T,
    "raw": np.vstack([np.sqrt(g0 / d) * x.T, np.sqrt(gb0) * np.ones((1, P))]),
}
rng = np.random.default_rng(0)
for name, f0 in inputs.items():
    theta = [rng.standard_normal((N, f0.shape[0])), rng.standard_normal((N, N + 1)),
             rng.standard_normal((N + 1, 1))]
    eps, reps = 1e-4, 50
    for _ in range(3):
        theta = step(theta, f0, eps, rng)
    t = time.perf_counter()
    for _ in range(reps):
        theta = step(theta, f0, eps, rng)
    ms = (time.perf_counter() - t) / reps * 1e3
    print(f"numpy Langevin step ({name} input layer, {f0.shape[0]} input features): {ms:.3f} ms")
