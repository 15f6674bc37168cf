"""The seed model in Keras 3, exactly as the Keras example, on the TensorFlow or JAX back end.

    Embedding(10000, 128) -> LSTM(128, return_sequences=True) -> LSTM(128) -> Dense(1, sigmoid)
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])

--cell gru puts GRU (Keras's default reset_after=True, torch.nn.GRU's formula) in place of
LSTM; --cell bilstm Bidirectional(LSTM(...)) (merge_mode "concat", Keras's default).

Train = model.train_on_batch (forward, backward, Adam, the accuracy metric), timed over --steps
after --warmup untimed calls; inference = model.predict_on_batch, timed over --steps batches.
compile_ms = wall time of the first train_on_batch (tracing the train function and, where
Keras's jit_compile="auto" turns it on, XLA compiling it).

"ftz" in the JSON line is measured after the run: keras.ops.matmul and keras.ops.multiply on
subnormal operands, eagerly and compiled the way the back end compiles the train function
(tf.function on TensorFlow, jax.jit on JAX).
"""
import os
import sys

import common  # noqa: F401  (thread / XLA environment first)
from common import (EMBED, THREADS, VOCAB, Timer, data, emit, flushes, parse_args,
                    probe_inputs, small_like)


def seed_model(keras, cell, seq, hidden, activation="sigmoid"):
    """The seed model as Keras spells it (check_models.py builds it with activation=None, to
    compare logits)."""
    from keras import layers

    def recurrent(return_sequences):
        if cell == "gru":
            return layers.GRU(hidden, return_sequences=return_sequences)
        lstm = layers.LSTM(hidden, return_sequences=return_sequences)
        return layers.Bidirectional(lstm) if cell == "bilstm" else lstm

    return keras.Sequential([
        keras.Input(shape=(seq,), dtype="int32"),
        layers.Embedding(VOCAB, EMBED),
        recurrent(return_sequences=True),
        recurrent(return_sequences=False),
        layers.Dense(1, activation=activation),
    ])


def probe_checks(backend):
    """The subnormal probe's ops for `flushes`, run by Keras on the back end."""
    from keras import ops
    a, ones, eye = (ops.convert_to_tensor(v) for v in probe_inputs())

    def matmul(a, eye):
        return ops.matmul(a, eye)

    def mul(a, ones):
        return ops.multiply(a, ones)

    if backend == "tensorflow":
        import tensorflow as tf
        compiled = tf.function
    else:
        import jax
        compiled = jax.jit
    checks = {}
    for name, f, args in (("matmul", matmul, (a, eye)), ("mul", mul, (a, ones))):
        checks[name] = lambda f=f, args=args: ops.convert_to_numpy(f(*args))
        checks[f"{name} compiled"] = lambda f=compiled(f), args=args: ops.convert_to_numpy(f(*args))
    return checks


def main():
    args = parse_args(lambda p: p.add_argument(
        "--backend", choices=["tensorflow", "jax"], default="tensorflow"))
    os.environ["KERAS_BACKEND"] = args.backend  # before keras is imported
    if args.backend == "tensorflow":
        import tensorflow as tf
        tf.config.threading.set_intra_op_parallelism_threads(THREADS)
        tf.config.threading.set_inter_op_parallelism_threads(THREADS)
    import keras
    assert keras.backend.backend() == args.backend, keras.backend.backend()
    keras.utils.set_random_seed(0)

    x, y = data(args.seq, args.batch)
    model = seed_model(keras, args.cell, args.seq, args.hidden)
    if args.init == "small":
        model.set_weights(small_like([w.shape for w in model.get_weights()]))
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])

    # train_on_batch returns the logs as numpy values, so each call has finished on return.
    with Timer() as t:
        model.train_on_batch(x, y)
    compile_ms = t.s * 1e3
    for _ in range(args.warmup):
        model.train_on_batch(x, y)
    with Timer() as t:
        for _ in range(args.steps):
            model.train_on_batch(x, y)
    train_sps = args.steps * args.batch / t.s

    for _ in range(1 + args.warmup):
        model.predict_on_batch(x)
    with Timer() as t:
        for _ in range(args.steps):
            model.predict_on_batch(x)  # returns numpy
    infer_sps = args.steps * args.batch / t.s
    print(f"keras {keras.__version__}, backend {args.backend}, jit_compile={model.jit_compile}",
          file=sys.stderr)
    name = f"keras-{args.backend}"
    ftz = flushes(name, probe_checks(args.backend))
    emit(name, args, train_sps, infer_sps, compile_ms, ftz)


if __name__ == "__main__":
    main()
