"""The seed model in Keras 3, exactly as the Keras example, on the TensorFlow or JAX back end.

    Embedding(10000, 128) -> LSTM(128, return_sequences=True) -> LSTM(128) -> Dense(1, sigmoid)
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])

Train = model.train_on_batch (forward, backward, Adam, the accuracy metric), timed over --steps
after --warmup untimed calls; inference = model.predict_on_batch, timed over --steps batches.
compile_ms = wall time of the first train_on_batch (tracing the train function and, where
Keras's jit_compile="auto" turns it on, XLA compiling it).
"""
import os
import sys

import common  # noqa: F401  (thread / XLA environment first)
from common import THREADS, VOCAB, EMBED, Timer, data, emit, parse_args


def main():
    args = parse_args(lambda p: p.add_argument(
        "--backend", choices=["tensorflow", "jax"], default="tensorflow"))
    os.environ["KERAS_BACKEND"] = args.backend  # before keras is imported
    if args.backend == "tensorflow":
        import tensorflow as tf
        tf.config.threading.set_intra_op_parallelism_threads(THREADS)
        tf.config.threading.set_inter_op_parallelism_threads(THREADS)
    import keras
    from keras import layers
    assert keras.backend.backend() == args.backend, keras.backend.backend()
    keras.utils.set_random_seed(0)

    x, y = data(args.seq, args.batch)
    model = keras.Sequential([
        keras.Input(shape=(args.seq,), dtype="int32"),
        layers.Embedding(VOCAB, EMBED),
        layers.LSTM(args.hidden, return_sequences=True),
        layers.LSTM(args.hidden),
        layers.Dense(1, activation="sigmoid"),
    ])
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
    emit(f"keras-{args.backend}", args, train_sps, infer_sps, compile_ms)


if __name__ == "__main__":
    main()
