"""TensorFlow peer: the MLP and BERT-mini workloads in a `tf.function` train step (with
`--xla 1`, `jit_compile=True`), Keras AdamW, one measurement per process."""

import math

from common import (BERT, EPSILON, INIT_STDDEV, LEARNING_RATE, LN_EPSILON, MLP, WEIGHT_DECAY,
                    masked_rows, measure, parse_args, report)

ARGS = parse_args()

import tensorflow as tf  # noqa: E402  (threads are set before any op runs)

tf.config.threading.set_intra_op_parallelism_threads(ARGS.threads)
tf.config.threading.set_inter_op_parallelism_threads(ARGS.threads)
tf.random.set_seed(0)

import keras  # noqa: E402

INIT = keras.initializers.RandomNormal(stddev=INIT_STDDEV)


def dense(units):
    return keras.layers.Dense(units, kernel_initializer=INIT)


def norm():
    return keras.layers.LayerNormalization(epsilon=LN_EPSILON)


class Layer(keras.layers.Layer):
    """Post-LayerNorm transformer block, as Grove's BertEncoder."""

    def __init__(self, b):
        super().__init__()
        h = b["hidden"]
        self.q, self.k, self.v, self.o = (dense(h) for _ in range(4))
        self.f1, self.f2 = dense(b["ffn"]), dense(h)
        self.ln1, self.ln2 = norm(), norm()
        self.heads, self.hidden, self.batch, self.seq = b["heads"], h, b["batch"], b["seq"]

    def call(self, x, bias):
        batch, seq, dh = self.batch, self.seq, self.hidden // self.heads

        def split(t):
            return tf.transpose(tf.reshape(t, (batch, seq, self.heads, dh)), (0, 2, 1, 3))

        q, k, v = split(self.q(x) / math.sqrt(dh)), split(self.k(x)), split(self.v(x))
        p = tf.nn.softmax(tf.matmul(q, k, transpose_b=True) + bias, axis=-1)
        context = tf.reshape(tf.transpose(tf.matmul(p, v), (0, 2, 1, 3)),
                             (batch * seq, self.hidden))
        x = self.ln1(x + self.o(context))
        return self.ln2(x + self.f2(tf.nn.gelu(self.f1(x), approximate=False)))


class Bert(keras.Model):
    """BERT-mini masked LM: embeddings, 4 layers, MLM head with a tied decoder."""

    def __init__(self, b):
        super().__init__()
        h = b["hidden"]
        self.word = self.add_weight(shape=(b["vocab"], h), initializer=INIT, name="word")
        self.position = self.add_weight(shape=(b["seq"], h), initializer=INIT, name="pos")
        self.token_type = self.add_weight(shape=(b["types"], h), initializer=INIT, name="type")
        self.ln_e = norm()
        self.blocks = [Layer(b) for _ in range(b["layers"])]
        self.transform, self.ln_t = dense(h), norm()
        self.decoder_bias = self.add_weight(shape=(b["vocab"],), initializer="zeros",
                                            name="decoder_bias")
        self.b = b

    def call(self, ids, types, mask, rows):
        batch, seq, h = self.b["batch"], self.b["seq"], self.b["hidden"]
        x = tf.gather(self.word, ids) + self.position[:seq] + tf.gather(self.token_type, types)
        x = self.ln_e(tf.reshape(x, (batch * seq, h)))
        bias = tf.reshape((1.0 - mask) * -10000.0, (batch, 1, 1, seq))
        for block in self.blocks:
            x = block(x, bias)
        m = self.ln_t(tf.nn.gelu(self.transform(tf.gather(x, rows)), approximate=False))
        return tf.matmul(m, self.word, transpose_b=True) + self.decoder_bias


def mlp_step():
    sizes = MLP["sizes"]
    model = keras.Sequential([keras.Input((sizes[0],)), dense(sizes[1]),
                              keras.layers.ReLU(), dense(sizes[2]), keras.layers.ReLU(),
                              dense(sizes[3])])
    x = tf.random.uniform((MLP["batch"], sizes[0]), -1.0, 1.0)
    y = tf.random.uniform((MLP["batch"],), 0, sizes[3], dtype=tf.int32)
    return model, lambda: model(x), y


def bert_step():
    b = BERT
    model = Bert(b)
    ids = tf.random.uniform((b["batch"], b["seq"]), 0, b["vocab"], dtype=tf.int32)
    types = tf.zeros_like(ids)
    mask = tf.ones((b["batch"], b["seq"]))
    rows = tf.constant(masked_rows())
    labels = tf.random.uniform((len(masked_rows()),), 0, b["vocab"], dtype=tf.int32)
    return model, lambda: model(ids, types, mask, rows), labels


def main():
    model, logits_fn, labels = mlp_step() if ARGS.workload == "mlp" else bert_step()
    optimizer = keras.optimizers.AdamW(LEARNING_RATE, weight_decay=WEIGHT_DECAY,
                                       epsilon=EPSILON)

    @tf.function(jit_compile=bool(ARGS.xla))
    def train_step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=labels, logits=logits_fn()))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    logits_fn()  # builds the variables before tracing
    ms = measure(lambda: float(train_step()), ARGS.warmup, ARGS.steps)
    runner = "tf_xla" if ARGS.xla else "tf"
    report(runner, ARGS.workload, ms, ARGS.threads, {"tensorflow": tf.__version__})


if __name__ == "__main__":
    main()
