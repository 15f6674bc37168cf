"""Do the peer scripts build the same model? For each cell, PyTorch's model (torch_lstm.py) is
the reference: its weights are copied into the pure JAX model (jax_lstm.py) and the Keras one
(keras_lstm.py's seed_model, --backend tensorflow|jax), and the logits of one batch must agree to
1e-5. Exits 1 on a mismatch.

    benches/peers/.venv/bin/python benches/peers/check_models.py [--backend tensorflow]

Weight layouts: PyTorch keeps [gates * H, in] matrices and two biases (summed for an LSTM; a
GRU keeps both, the recurrent one inside r * (...)); JAX and Keras keep [in, gates * H]. Gate
order: LSTM i, f, g, o everywhere; GRU r, z, n in PyTorch and JAX, z, r, h in Keras.
"""
import argparse
import os
import sys

import common  # noqa: F401  (thread / XLA environment first)
from common import CELLS, data

TOL = 1e-5


def torch_reference(cell, hidden, ids):
    import torch
    from torch_lstm import Seed
    torch.manual_seed(0)
    m = Seed(cell, hidden)
    with torch.no_grad():  # nonzero biases, so that a misplaced bias shows
        for name, p in m.named_parameters():
            if "bias" in name:
                p.uniform_(-0.1, 0.1)
        logits = m(torch.from_numpy(ids).long()).numpy()
    return logits, {k: v.numpy() for k, v in m.state_dict().items()}


def directions(sd, cell):
    """Per layer, per direction: (w_ih, w_hh, b_ih, b_hh) in PyTorch's layout."""
    dirs = ("", "_reverse") if cell == "bilstm" else ("",)
    return [[tuple(sd[f"rnn.{k}_l{l}{d}"] for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
             for d in dirs] for l in range(2)]


def jax_logits(cell, sd, ids):
    import jax
    import jax.numpy as jnp
    from jax_lstm import logits_fn

    def layer(w_ih, w_hh, b_ih, b_hh):
        if cell == "gru":
            return {"w": w_ih.T, "u": w_hh.T, "b": b_ih, "bh": b_hh}
        return {"w": w_ih.T, "u": w_hh.T, "b": b_ih + b_hh}

    params = {"emb": sd["embedding.weight"],
              "layers": [[layer(*d) for d in ds] for ds in directions(sd, cell)],
              "dense": {"w": sd["dense.weight"].T, "b": sd["dense.bias"]}}
    return jax.device_get(logits_fn(cell, jax.tree.map(jnp.asarray, params), jnp.asarray(ids)))


def keras_logits(cell, sd, ids, hidden, backend):
    os.environ["KERAS_BACKEND"] = backend
    import numpy as np
    import keras
    from keras_lstm import seed_model
    model = seed_model(keras, cell, ids.shape[1], hidden, activation=None)  # logits

    def rzn_to_zrh(a, axis):
        r, z, n = np.split(a, 3, axis=axis)
        return np.concatenate([z, r, n], axis=axis)

    def weights(w_ih, w_hh, b_ih, b_hh):
        if cell == "gru":
            return [rzn_to_zrh(w_ih.T, 1), rzn_to_zrh(w_hh.T, 1),
                    np.stack([rzn_to_zrh(b_ih, 0), rzn_to_zrh(b_hh, 0)])]
        return [w_ih.T, w_hh.T, b_ih + b_hh]

    model.layers[0].set_weights([sd["embedding.weight"]])
    for layer, ds in zip(model.layers[1:3], directions(sd, cell)):
        layer.set_weights([w for d in ds for w in weights(*d)])  # Bidirectional: forward, backward
    model.layers[3].set_weights([sd["dense.weight"].T, sd["dense.bias"]])
    return np.asarray(model.predict_on_batch(ids))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backend", choices=["tensorflow", "jax"], default="tensorflow",
                    help="Keras's back end (one per process: Keras reads it once)")
    a = ap.parse_args()
    import numpy as np
    hidden, ok = 16, True
    ids, _ = data(12, 4)
    for cell in CELLS:
        ref, sd = torch_reference(cell, hidden, ids)
        for name, z in (("jax", jax_logits(cell, sd, ids)),
                        (f"keras-{a.backend}", keras_logits(cell, sd, ids, hidden, a.backend))):
            err = float(np.max(np.abs(np.asarray(z).reshape(ref.shape) - ref)))
            ok &= err <= TOL
            print(f"{cell:7s} {name:17s} max |logit - pytorch| = {err:.2e} "
                  f"{'ok' if err <= TOL else 'MISMATCH'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
