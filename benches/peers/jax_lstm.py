"""The seed model in pure JAX: an LSTM cell under lax.scan, parameters as a pytree,
jax.value_and_grad, Adam written out (Keras's form), the whole training step under jax.jit.

Gate order i, f, g, o (as Keras); the input projection x @ W + b of a layer is one matmul over
all time steps, and the scan carries (h, c) and does h @ U per step. Parameters and Adam state
are donated to the step, so XLA may update them in place.

compile_ms = wall time of the first training step (trace + XLA compile + one run).
"""
import common  # noqa: F401  (thread / XLA environment first)
from common import VOCAB, EMBED, Timer, data, emit, parse_args

import jax
import jax.numpy as jnp
from jax import lax

LR, B1, B2, EPS = 1e-3, 0.9, 0.999, 1e-7


def init(key, hidden):
    ks = jax.random.split(key, 6)

    def glorot(k, shape):
        lim = (6.0 / (shape[0] + shape[1])) ** 0.5
        return jax.random.uniform(k, shape, jnp.float32, -lim, lim)

    def layer(kw, ku, n_in):
        b = jnp.zeros((4 * hidden,), jnp.float32).at[hidden:2 * hidden].set(1.0)  # forget bias 1
        return {"w": glorot(kw, (n_in, 4 * hidden)),
                "u": jnp.linalg.qr(jax.random.normal(ku, (4 * hidden, hidden)))[0].T,
                "b": b}

    return {
        "emb": jax.random.uniform(ks[0], (VOCAB, EMBED), jnp.float32, -0.05, 0.05),
        "l1": layer(ks[1], ks[2], EMBED),
        "l2": layer(ks[3], ks[4], hidden),
        "dense": {"w": glorot(ks[5], (hidden, 1)), "b": jnp.zeros((1,), jnp.float32)},
    }


def lstm(p, xs):
    """xs: [T, B, in] time-major -> hs: [T, B, H]."""
    T, B, _ = xs.shape
    H = p["u"].shape[0]
    zx = jnp.einsum("tbi,ig->tbg", xs, p["w"]) + p["b"]  # input projection, all steps at once

    def cell(carry, z):
        h, c = carry
        z = z + h @ p["u"]
        i, f, g, o = jnp.split(z, 4, axis=-1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return (h, c), h

    zeros = jnp.zeros((B, H), xs.dtype)
    _, hs = lax.scan(cell, (zeros, zeros), zx)
    return hs


def logits_fn(params, ids):
    x = jnp.take(params["emb"], ids.T, axis=0)  # [T, B, E]
    h = lstm(params["l2"], lstm(params["l1"], x))[-1]
    return h @ params["dense"]["w"] + params["dense"]["b"]


def loss_fn(params, ids, y):
    z = logits_fn(params, ids)
    return jnp.mean(jnp.maximum(z, 0) - z * y + jnp.log1p(jnp.exp(-jnp.abs(z))))


def train_step(params, opt, ids, y):
    loss, g = jax.value_and_grad(loss_fn)(params, ids, y)
    t = opt["t"] + 1
    lr_t = LR * jnp.sqrt(1 - B2 ** t) / (1 - B1 ** t)
    m = jax.tree.map(lambda m, g: B1 * m + (1 - B1) * g, opt["m"], g)
    v = jax.tree.map(lambda v, g: B2 * v + (1 - B2) * g * g, opt["v"], g)
    params = jax.tree.map(lambda p, m, v: p - lr_t * m / (jnp.sqrt(v) + EPS), params, m, v)
    return params, {"m": m, "v": v, "t": t}, loss


def main():
    args = parse_args()
    xn, yn = data(args.seq, args.batch)
    ids, y = jnp.asarray(xn), jnp.asarray(yn)
    params = init(jax.random.PRNGKey(0), args.hidden)
    zeros = lambda: jax.tree.map(jnp.zeros_like, params)  # noqa: E731
    opt = {"m": zeros(), "v": zeros(), "t": jnp.zeros((), jnp.float32)}
    jax.block_until_ready((params, opt, ids, y))

    step = jax.jit(train_step, donate_argnums=(0, 1))
    with Timer() as t:
        params, opt, loss = step(params, opt, ids, y)
        jax.block_until_ready(loss)
    compile_ms = t.s * 1e3
    for _ in range(args.warmup):
        params, opt, loss = step(params, opt, ids, y)
    jax.block_until_ready((params, opt))
    with Timer() as t:
        for _ in range(args.steps):
            params, opt, loss = step(params, opt, ids, y)
        jax.block_until_ready((params, opt, loss))
    train_sps = args.steps * args.batch / t.s

    predict = jax.jit(lambda p, ids: jax.nn.sigmoid(logits_fn(p, ids)))
    for _ in range(1 + args.warmup):
        predict(params, ids).block_until_ready()
    with Timer() as t:
        for _ in range(args.steps):
            predict(params, ids).block_until_ready()
    infer_sps = args.steps * args.batch / t.s
    emit("jax", args, train_sps, infer_sps, compile_ms)


if __name__ == "__main__":
    main()
