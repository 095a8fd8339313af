"""The LSTM of models 1-4: Keras' own layer, with a fused recurrence where TensorFlow runs it on a
CPU.

On a GPU Keras already runs the whole recurrence as one cuDNN kernel (the paper's CuDNNLSTM). On a
CPU its TensorFlow backend runs it as a `while` loop of small ops, one iteration per frame forward
and again backward, each op paying TensorFlow's dispatch: most of a training step is that
overhead. Here, on the TensorFlow backend without a GPU, the same layer computes the same function
with the same variables in fewer, larger ops:

- forward: TensorFlow's fused kernel `BlockLSTMV2` (the kernel behind `LSTMBlockFusedCell`), one
  op for the whole sequence;
- backward: the gradient written out (`tf.custom_gradient`; TensorFlow's registered gradient of
  BlockLSTMV2 does not match its forward pass). Only dh and dc run back through time, in one loop
  compiled by XLA; the input and weight gradients, which do not recur, are then large matrix
  products over every frame at once.

Everything else (GPU, the JAX and PyTorch backends, masks, dropout inside the layer, other
activations or dtypes, and a step compiled by XLA, `jit_compile=True`, which has no kernel for
BlockLSTMV2: said once in the log) runs Keras' own code. The layer's variables, config and saved
files are Keras' LSTM's, under the registered name `cremad>LSTM`: a model saved on one path loads
and predicts on the other. `CREMAD_CPU_LSTM=stock` (or `cpu_kernel("stock")`) turns the fused path off,
for comparisons.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os

import keras

log = logging.getLogger(__name__)

CPU_KERNELS = ("fused", "stock")
_cpu_kernel = os.environ.get("CREMAD_CPU_LSTM", "fused")


def _check_kernel(name: str, source: str) -> str:
    if name not in CPU_KERNELS:
        raise ValueError(f"{source} must be one of {CPU_KERNELS}, got {name!r}")
    return name


@contextlib.contextmanager
def cpu_kernel(name: str):
    """Within the block, LSTMs traced on a CPU under TensorFlow use kernel `name`: "fused" (the
    default) or "stock" (Keras' own loop). The choice is made when a model's step is traced, so
    build, compile and run the model's first step inside the block."""
    global _cpu_kernel
    saved, _cpu_kernel = _cpu_kernel, _check_kernel(name, "cpu_kernel")
    try:
        yield
    finally:
        _cpu_kernel = saved


def fused_available() -> bool:
    """Whether LSTMs traced now take the fused CPU path: TensorFlow backend, no GPU visible and
    the kernel setting (CREMAD_CPU_LSTM, cpu_kernel) at "fused"."""
    if _check_kernel(_cpu_kernel, "CREMAD_CPU_LSTM") != "fused" or keras.backend.backend() != "tensorflow":
        return False
    import tensorflow as tf

    return not tf.config.list_logical_devices("GPU")


def kernel_in_use() -> str:
    """What runs LSTMs traced now: "fused" (this module's recurrence: TensorFlow on a CPU) or
    "keras" (Keras' own: cuDNN on a GPU, its loop elsewhere)."""
    return "fused" if fused_available() else "keras"


@keras.saving.register_keras_serializable(package="cremad")
class LSTM(keras.layers.LSTM):
    """keras.layers.LSTM with the fused recurrence on a CPU under TensorFlow (module docstring);
    identical arguments, variables and config."""

    def _fuses(self, mask, training) -> bool:
        cell = self.cell
        return (
            mask is None
            and not self.unroll
            and cell.use_bias
            and cell.activation is keras.activations.tanh
            and cell.recurrent_activation is keras.activations.sigmoid
            and not cell.recurrent_dropout
            and not (training and cell.dropout)
            and self.compute_dtype == "float32"
            and fused_available()
            and not _compiling_with_xla()
        )

    def inner_loop(self, sequences, initial_state, mask, training=False):
        if not self._fuses(mask, training):
            return super().inner_loop(sequences, initial_state, mask=mask, training=training)
        import tensorflow as tf

        self.supports_jit = False  # BlockLSTMV2 has no XLA kernel
        h0, c0 = initial_state[0], initial_state[1]
        inputs = tf.transpose(sequences, (1, 0, 2))  # (T, B, I): time-major, as the kernel wants
        if self.go_backwards:
            inputs = tf.reverse(inputs, axis=[0])  # outputs stay in processing order, as Keras'
        outputs, h, c = fused_lstm(
            inputs, self.cell.kernel.value, self.cell.recurrent_kernel.value, self.cell.bias.value, h0, c0
        )
        if self.return_sequences:
            outputs = tf.transpose(outputs, (1, 0, 2))  # (B, T, H)
        else:
            outputs = h[:, None, :]  # (B, 1, H), what Keras' loop returns; the layer outputs h
        return h, outputs, [h, c]


def _compiling_with_xla() -> bool:
    """Whether the step being traced is compiled by XLA (`jit_compile=True`), which cannot compile
    BlockLSTMV2; the first time, say so in the log."""
    from tensorflow.python.framework import ops
    from tensorflow.python.ops import control_flow_util

    if not control_flow_util.GraphOrParentsInXlaContext(ops.get_default_graph()):
        return False
    _say_xla_runs_keras_loop()
    return True


@functools.cache  # once per process
def _say_xla_runs_keras_loop() -> None:
    log.warning(
        "jit_compile: XLA has no kernel for the fused CPU LSTM (BlockLSTMV2); "
        "the LSTMs of XLA-compiled steps run Keras' own loop"
    )


def fused_lstm(inputs, kernel, recurrent_kernel, bias, h0, c0):
    """The LSTM recurrence over time-major `inputs` (T, B, I) from states h0, c0 (B, H), with Keras'
    LSTM weights (kernel (I, 4H), recurrent_kernel (H, 4H), bias (4H,), gates i, f, c, o; tanh and
    sigmoid). Returns every step's h (T, B, H), the last h and the last c (B, H), differentiable in
    all six arguments by `_hoisted_gradient` (not TensorFlow's registered gradient of BlockLSTMV2,
    which disagrees with its own forward pass: experiments/README.md#cpu-lstm)."""
    import tensorflow as tf

    @tf.custom_gradient
    def recurrence(inputs, kernel, recurrent_kernel, bias, h0, c0):
        i, cs, f, o, ci, co, h = _block_lstm(inputs, kernel, recurrent_kernel, bias, h0, c0)

        def gradient(dh_sequence, dh_last, dc_last):
            upstream = (dh_sequence, dh_last, dc_last)
            return _hoisted_gradient(
                upstream, inputs, kernel, recurrent_kernel, h0, c0, (i, cs, f, o, ci, co, h)
            )

        return (h, h[-1], cs[-1]), gradient

    return recurrence(inputs, kernel, recurrent_kernel, bias, h0, c0)


def _block_lstm(inputs, kernel, recurrent_kernel, bias, h0, c0):
    """TensorFlow's fused LSTM kernel, forward: every frame's i, cs, f, o, ci (tanh of the cell
    input), co (tanh of cs) and h, each (T, B, H)."""
    import tensorflow as tf

    no_peephole = tf.zeros([recurrent_kernel.shape[0]], inputs.dtype)
    return tf.raw_ops.BlockLSTMV2(
        seq_len_max=tf.cast(tf.shape(inputs)[0], tf.int64),
        x=inputs,
        cs_prev=c0,
        h_prev=h0,
        w=tf.concat([kernel, recurrent_kernel], axis=0),  # (I + H, 4H): gates i, f, c, o, as Keras'
        wci=no_peephole,
        wcf=no_peephole,
        wco=no_peephole,
        b=bias,
        cell_clip=0.0,  # no clipping
        use_peephole=False,
    )


def _hoisted_gradient(upstream, inputs, kernel, recurrent_kernel, h0, c0, saved):
    """The gradient of `fused_lstm` with respect to its six arguments, given the gradients of its
    three outputs (`upstream`; None for an output that got none) and the forward's gates and
    states (`saved`: _block_lstm's seven outputs). Only dh and dc run back through time, in one
    loop compiled by XLA; the input and weight gradients, which do not recur, are then large
    matrix products over every frame at once."""
    import tensorflow as tf

    dh_sequence, dh_last, dc_last = upstream
    i, cs, f, o, ci, co, h = saved
    n_inputs, n_units = kernel.shape[0], recurrent_kernel.shape[0]
    dh_sequence = tf.zeros_like(h) if dh_sequence is None else dh_sequence
    dh_last = tf.zeros_like(h0) if dh_last is None else dh_last
    dc_last = tf.zeros_like(c0) if dc_last is None else dc_last
    d_gates, dh0, dc0 = _backward_through_time()(
        dh_sequence, dh_last, dc_last, i, cs, f, o, ci, co, c0, recurrent_kernel
    )  # (T, B, 4H), (B, H), (B, H)
    h_prev = tf.concat([h0[None], h[:-1]], axis=0)  # h<t-1>, (T, B, H)
    flat = tf.reshape(d_gates, (-1, 4 * n_units))  # (T * B, 4H)
    d_kernel = tf.matmul(tf.reshape(inputs, (-1, n_inputs)), flat, transpose_a=True)
    d_recurrent = tf.matmul(tf.reshape(h_prev, (-1, n_units)), flat, transpose_a=True)
    d_bias = tf.reduce_sum(flat, axis=0)
    d_inputs = tf.reshape(tf.matmul(flat, kernel, transpose_b=True), tf.shape(inputs))
    return d_inputs, d_kernel, d_recurrent, d_bias, dh0, dc0


@functools.cache
def _backward_through_time():
    """The part of the LSTM's gradient that runs back through time, compiled by XLA into one
    loop (TensorFlow's executor would pay its dispatch for each small op of each frame): from the
    last frame to the first, dh<t> (from above and from step t+1) and dc<t> give the gates'
    gradient, whose product with the recurrent kernel is step t-1's dh. Returns the gates'
    gradients (T, B, 4H) in Keras' order i, f, c, o, and dh0, dc0 (B, H)."""
    import tensorflow as tf

    @tf.function(jit_compile=True)
    def backward(dh_sequence, dh_last, dc_last, i, cs, f, o, ci, co, c0, recurrent_kernel):
        n_frames = tf.shape(dh_sequence)[0]
        recurrent_t = tf.transpose(recurrent_kernel)  # (4H, H)

        def frame(k, dh_next, dc_next, d_gates):
            t = n_frames - 1 - k
            i_t, f_t, o_t, ci_t, co_t = i[t], f[t], o[t], ci[t], co[t]  # (B, H) each
            c_prev = tf.where(t > 0, cs[tf.maximum(t - 1, 0)], c0)  # c<t-1>
            dh = dh_sequence[t] + dh_next
            dc = dc_next + dh * o_t * (1 - co_t * co_t)
            d_gate = tf.concat(  # d(loss)/d(pre-activation gates i, f, c, o)
                [
                    dc * ci_t * i_t * (1 - i_t),
                    dc * c_prev * f_t * (1 - f_t),
                    dc * i_t * (1 - ci_t * ci_t),
                    dh * co_t * o_t * (1 - o_t),
                ],
                axis=-1,
            )  # (B, 4H)
            return k + 1, tf.matmul(d_gate, recurrent_t), dc * f_t, d_gates.write(t, d_gate)

        d_gates = tf.TensorArray(dh_sequence.dtype, size=n_frames, element_shape=(i.shape[1], 4 * i.shape[2]))
        _, dh0, dc0, d_gates = tf.while_loop(
            lambda k, *_: k < n_frames, frame, (0, dh_last, dc_last, d_gates), maximum_iterations=n_frames
        )
        return d_gates.stack(), dh0, dc0

    return backward
