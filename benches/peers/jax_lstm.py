"""The seed model in pure JAX: the recurrent cell under lax.scan, parameters as a pytree,
jax.value_and_grad, Adam written out (Keras's form), the whole training step under jax.jit.

--cell lstm: gate order i, f, g, o (as Keras), forget-gate bias 1. gru: torch.nn.GRU's formula
(Keras reset_after=True), gate order r, z, n, separate input and recurrent biases (zero):
    r = sigmoid(x W_r + b_ir + h U_r + b_hr)      z = the same with W_z, U_z
    n = tanh(x W_n + b_in + r * (h U_n + b_hn))   h' = (1 - z) n + z h
bilstm: each layer runs two LSTMs, the second a scan in reverse (lax.scan(reverse=True)), its
outputs concatenated with the first's on the feature axis (the second layer reads 2H); the last
layer's two final states, concatenated, feed the dense layer (Keras's Bidirectional(LSTM)).

The input projection x @ W + b of a layer is one matmul over all time steps, and the scan carries
the state and does h @ U per step. Parameters and Adam state are donated to the step, so XLA may
update them in place.

compile_ms = wall time of the first training step (trace + XLA compile + one run). "ftz" in the
JSON line is measured after the run: a matmul and an elementwise product on subnormal operands,
jitted by JAX.
"""
import functools

import common  # noqa: F401  (thread / XLA environment first)
from common import (EMBED, VOCAB, Timer, data, emit, flushes, parse_args, probe_inputs,
                    small_like)

import jax
import jax.numpy as jnp
from jax import lax

LR, B1, B2, EPS = 1e-3, 0.9, 0.999, 1e-7


def init(key, cell, hidden):
    gates = 3 if cell == "gru" else 4
    directions = 2 if cell == "bilstm" else 1
    keys = iter(jax.random.split(key, 2 + 2 * 2 * directions))

    def glorot(k, shape):
        lim = (6.0 / (shape[0] + shape[1])) ** 0.5
        return jax.random.uniform(k, shape, jnp.float32, -lim, lim)

    def layer(n_in):
        p = {"w": glorot(next(keys), (n_in, gates * hidden)),
             "u": jnp.linalg.qr(jax.random.normal(next(keys), (gates * hidden, hidden)))[0].T}
        if cell == "gru":
            p["b"] = jnp.zeros((3 * hidden,), jnp.float32)  # input bias
            p["bh"] = jnp.zeros((3 * hidden,), jnp.float32)  # recurrent bias (inside r * ...)
        else:
            p["b"] = jnp.zeros((4 * hidden,), jnp.float32).at[hidden:2 * hidden].set(1.0)
        return p

    width = directions * hidden
    return {
        "emb": jax.random.uniform(next(keys), (VOCAB, EMBED), jnp.float32, -0.05, 0.05),
        # Two layers, each a list of directions (forward, then reverse for bilstm).
        "layers": [[layer(n_in) for _ in range(directions)] for n_in in (EMBED, width)],
        "dense": {"w": glorot(next(keys), (width, 1)), "b": jnp.zeros((1,), jnp.float32)},
    }


def lstm_cell(p, carry, z):
    h, c = carry
    z = z + h @ p["u"]
    i, f, g, o = jnp.split(z, 4, axis=-1)
    c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
    h = jax.nn.sigmoid(o) * jnp.tanh(c)
    return (h, c), h


def gru_cell(p, h, zx):
    xr, xz, xn = jnp.split(zx, 3, axis=-1)
    hr, hz, hn = jnp.split(h @ p["u"] + p["bh"], 3, axis=-1)
    r = jax.nn.sigmoid(xr + hr)
    z = jax.nn.sigmoid(xz + hz)
    n = jnp.tanh(xn + r * hn)
    h = n + z * (h - n)  # (1 - z) n + z h
    return h, h


def recurrent(cell, p, xs, reverse):
    """xs: [T, B, in] time-major -> (hs [T, B, H] in time order, the final state h [B, H]);
    reverse runs from the last step to the first (the backward direction)."""
    T, B, _ = xs.shape
    H = p["u"].shape[0]
    zx = jnp.einsum("tbi,ig->tbg", xs, p["w"]) + p["b"]  # input projection, all steps at once
    zeros = jnp.zeros((B, H), xs.dtype)
    if cell == "gru":
        h, hs = lax.scan(lambda c, z: gru_cell(p, c, z), zeros, zx, reverse=reverse)
    else:
        (h, _), hs = lax.scan(lambda c, z: lstm_cell(p, c, z), (zeros, zeros), zx,
                              reverse=reverse)
    return hs, h


def encode(cell, layers, x):
    """x: [T, B, E] -> the last layer's final state(s), [B, directions * H]."""
    for l, directions in enumerate(layers):
        runs = [recurrent(cell, p, x, reverse=d == 1) for d, p in enumerate(directions)]
        if l + 1 < len(layers):
            x = jnp.concatenate([hs for hs, _ in runs], axis=-1)
        else:
            return jnp.concatenate([h for _, h in runs], axis=-1)


def logits_fn(cell, params, ids):
    x = jnp.take(params["emb"], ids.T, axis=0)  # [T, B, E]
    h = encode(cell, params["layers"], x)
    return h @ params["dense"]["w"] + params["dense"]["b"]


def loss_fn(params, cell, ids, y):
    z = logits_fn(cell, params, ids)
    return jnp.mean(jnp.maximum(z, 0) - z * y + jnp.log1p(jnp.exp(-jnp.abs(z))))


def train_step(cell, params, opt, ids, y):
    loss, g = jax.value_and_grad(loss_fn)(params, cell, ids, y)
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
    params = init(jax.random.PRNGKey(0), args.cell, args.hidden)
    if args.init == "small":
        leaves, tree = jax.tree.flatten(params)
        params = jax.tree.unflatten(tree, [jnp.asarray(v) for v in
                                           small_like([p.shape for p in leaves])])
    zeros = lambda: jax.tree.map(jnp.zeros_like, params)  # noqa: E731
    opt = {"m": zeros(), "v": zeros(), "t": jnp.zeros((), jnp.float32)}
    jax.block_until_ready((params, opt, ids, y))

    step = jax.jit(functools.partial(train_step, args.cell), donate_argnums=(0, 1))
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

    predict = jax.jit(lambda p, ids: jax.nn.sigmoid(logits_fn(args.cell, p, ids)))
    for _ in range(1 + args.warmup):
        predict(params, ids).block_until_ready()
    with Timer() as t:
        for _ in range(args.steps):
            predict(params, ids).block_until_ready()
    infer_sps = args.steps * args.batch / t.s
    a, ones, eye = (jnp.asarray(v) for v in probe_inputs())
    ftz = flushes("jax", {"matmul": lambda: jax.device_get(jax.jit(jnp.matmul)(a, eye)),
                          "mul": lambda: jax.device_get(jax.jit(jnp.multiply)(a, ones))})
    emit("jax", args, train_sps, infer_sps, compile_ms, ftz)


if __name__ == "__main__":
    main()
