"""The fused CPU recurrence (cremad.lstm) computes what Keras' own LSTM computes: the same outputs,
final states and gradients from the same weights, in both directions and in every model; a model
saved on one path predicts the same on the other; a fold trains on it."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from cremad import lstm
from cremad.config import ExperimentConfig, ModelConfig, replace
from cremad.lstm import LSTM, cpu_kernel, fused_available
from cremad.model_names import ATTENTION_MODEL_IDS, CELLS, MODEL_IDS, model_spec
from cremad.models import build_model, load_model

pytestmark = pytest.mark.skipif(
    not fused_available(), reason="the fused recurrence runs on TensorFlow without a GPU only"
)

# float32 rounding: the two paths sum the same products in another order, over up to 60 frames
# here (observed differences: about 1e-6 of values of order 1-10).
TOLERANCE = {"rtol": 1e-4, "atol": 2e-5}
PADDING_FRAMES = 15  # every input begins with all-zero frames, as clips zero-padded at the start


@pytest.fixture
def fused_calls(monkeypatch):
    """How many times a layer took the fused path (calls to cremad.lstm.fused_lstm)."""
    calls = []
    original = lstm.fused_lstm

    def counted(*args, **kwargs):
        calls.append(args[0].shape)
        return original(*args, **kwargs)

    monkeypatch.setattr(lstm, "fused_lstm", counted)
    return calls


@pytest.fixture
def keras_loops(monkeypatch):
    """How many times a layer ran Keras' own loop (calls to keras' backend.rnn)."""
    from keras.src import backend

    calls = []
    original = backend.rnn

    def counted(*args, **kwargs):
        calls.append(kwargs.get("go_backwards", False))
        return original(*args, **kwargs)

    monkeypatch.setattr(backend, "rnn", counted)
    return calls


def padded_inputs(batch: int, frames: int, features: int, seed: int = 0) -> np.ndarray:
    """Random frames after up to PADDING_FRAMES zero frames; the last frame is never padding, so
    a one-frame input is speech."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, frames, features)).astype("float32")
    x[:, : min(PADDING_FRAMES, frames - 1)] = 0.0
    return x


def layer_run(kernel: str, weights, units: int, x, initial_state, **options):
    """Outputs, states and gradients (input, initial states h0 and c0 when given, kernel,
    recurrent kernel, bias) of an LSTM with `weights` on `x`, traced under CPU kernel `kernel`."""
    import tensorflow as tf

    with cpu_kernel(kernel):
        layer = LSTM(units, return_state=True, **options)
        layer.build((None, *x.shape[1:]))
        layer.set_weights(weights)

        @tf.function
        def run(x, h0, c0):
            given = [x] if h0 is None else [x, h0, c0]
            with tf.GradientTape() as tape:
                tape.watch(given)
                output, h, c = layer(x, initial_state=None if h0 is None else [h0, c0])
                # a loss that weighs every output frame and both final states differently
                weights_over_time = tf.reshape(
                    tf.sin(tf.range(tf.size(output), dtype=tf.float32)), output.shape
                )
                loss = tf.reduce_sum(output * weights_over_time) + tf.reduce_sum(h**2) + 3 * tf.reduce_sum(c)
            return output, h, c, tape.gradient(loss, [*given, *layer.trainable_variables])

        h0, c0 = (None, None) if initial_state is None else (tf.constant(state) for state in initial_state)
        return [np.asarray(value) for value in tf.nest.flatten(run(tf.constant(x), h0, c0))]


@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("n_inputs, units, frames", [(13, 64, 60), (64, 128, 40), (128, 128, 30), (5, 7, 1)])
@pytest.mark.parametrize("initial_state", [False, True])
def test_fused_layer_equals_keras_own(
    go_backwards, return_sequences, n_inputs, units, frames, initial_state, fused_calls, keras_loops
):
    x = padded_inputs(4, frames, n_inputs)
    rng = np.random.default_rng(1)
    weights = [
        rng.uniform(-0.4, 0.4, (n_inputs, 4 * units)).astype("float32"),
        rng.uniform(-0.4, 0.4, (units, 4 * units)).astype("float32"),
        rng.uniform(-1.0, 1.0, 4 * units).astype("float32"),
    ]
    states = [rng.standard_normal((4, units)).astype("float32") for _ in range(2)] if initial_state else None
    options = {"go_backwards": go_backwards, "return_sequences": return_sequences}
    assert np.abs(x[:, -1]).min() > 0  # the last frame, the only one of a one-frame input, is speech
    stock = layer_run("stock", weights, units, x, states, **options)
    assert keras_loops and not fused_calls  # the reference is Keras' own loop
    keras_loops.clear()
    fused = layer_run("fused", weights, units, x, states, **options)
    assert fused_calls and not keras_loops
    names = ["output", "h", "c", "d input", *(["d h0", "d c0"] if initial_state else [])]
    names += ["d kernel", "d recurrent kernel", "d bias"]
    assert len(stock) == len(fused) == len(names)
    for name, expected, got in zip(names, stock, fused):
        np.testing.assert_allclose(got, expected, **TOLERANCE, err_msg=name)


# Entries of each argument of fused_lstm whose gradient is checked against central differences:
# every gate block (i, f, c, o: columns 0-7, 8-15, 16-23, 24-31 of 8 units), and states.
CHECKED_ENTRIES = {
    "kernel": [(0, 0), (1, 5), (2, 9), (0, 17), (1, 25), (2, 31)],
    "recurrent_kernel": [(0, 1), (3, 10), (7, 18), (5, 30)],
    "bias": [(2,), (12,), (20,), (27,)],
    "h0": [(0, 0), (1, 7)],
    "c0": [(0, 3), (1, 5)],
}


@pytest.mark.parametrize("argument", list(CHECKED_ENTRIES))
def test_fused_gradient_matches_finite_differences(argument):
    """The hand-written gradient against the forward pass itself (central differences), with
    respect to the input kernel, the recurrent kernel, the bias and the initial states."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    x = tf.constant(rng.standard_normal((6, 2, 3)).astype("float32"))  # (T, B, I)
    arguments = {
        "kernel": rng.uniform(-0.5, 0.5, (3, 32)),
        "recurrent_kernel": rng.uniform(-0.5, 0.5, (8, 32)),
        "bias": rng.uniform(-0.5, 0.5, 32),
        "h0": rng.standard_normal((2, 8)),
        "c0": rng.standard_normal((2, 8)),
    }
    arguments = {name: value.astype("float32") for name, value in arguments.items()}

    def loss(value):
        h_sequence, h, c = lstm.fused_lstm(x, **{**arguments, argument: value})
        return tf.reduce_sum(h_sequence**2) + tf.reduce_sum(c * h)

    variable = tf.constant(arguments[argument])
    with tf.GradientTape() as tape:
        tape.watch(variable)
        value = loss(variable)
    gradient = tape.gradient(value, variable).numpy()
    assert np.abs(gradient).max() > 0.1  # a gradient that says something
    for index in CHECKED_ENTRIES[argument]:
        step = np.zeros_like(arguments[argument])
        step[index] = 1e-2
        numeric = (float(loss(arguments[argument] + step)) - float(loss(arguments[argument] - step))) / 2e-2
        assert gradient[index] == pytest.approx(numeric, abs=2e-3), index


# Several decoder steps are the attention models' (the others read every frame once).
@pytest.mark.parametrize(
    "model_id, decoder_steps",
    [(model_id, 1) for model_id in MODEL_IDS] + [(model_id, 3) for model_id in ATTENTION_MODEL_IDS],
)
def test_every_model_fused_equals_keras_own(model_id, decoder_steps, fused_calls, keras_loops):
    """Predictions and the gradient of every weight, from the same weights, on padded inputs;
    with three decoder steps the post-LSTM's later steps start from states the model computed,
    so the gradients reach them through h0 and c0. Which path each recurrent call took is counted
    from the model's record: on "stock" every call runs Keras' loop, on "fused" the LSTM calls run
    the fused kernel and only the others (a GRU) Keras' loop."""
    import tensorflow as tf

    spec = model_spec(model_id)
    calls = spec.recurrent_calls(decoder_steps=decoder_steps)
    fused = sum(spec.recurrent_calls(name, decoder_steps) for name, cell in CELLS.items() if cell.fused_cpu)
    expected = {"stock": (0, calls), "fused": (fused, calls - fused)}
    x = padded_inputs(3, 40, 13)
    y = tf.constant([0, 3, 5])
    results = {}
    for kernel in ("stock", "fused"):
        with cpu_kernel(kernel):
            keras.utils.set_random_seed(0)
            model = build_model(model_id, 40, config=ModelConfig(decoder_steps=decoder_steps))

            @tf.function
            def run(x, model=model):
                with tf.GradientTape() as tape:
                    probabilities = model(x, training=False)  # dropout off: both paths see the same
                    loss = keras.losses.sparse_categorical_crossentropy(y, probabilities)
                return probabilities, tape.gradient(loss, model.trainable_variables)

            fused_calls.clear()  # count the traced step only, not the build
            keras_loops.clear()
            probabilities, gradients = run(tf.constant(x))
            assert (len(fused_calls), len(keras_loops)) == expected[kernel], kernel
            results[kernel] = [np.asarray(probabilities), *(np.asarray(g) for g in gradients)]
    for stock, fused in zip(results["stock"], results["fused"]):
        np.testing.assert_allclose(fused, stock, **TOLERANCE)


@pytest.mark.parametrize("saved_on, loaded_on", [("fused", "stock"), ("stock", "fused")])
@pytest.mark.parametrize("model_id", [2, 4])  # both directions, with and without attention
def test_a_model_saved_on_one_path_predicts_the_same_on_the_other(model_id, saved_on, loaded_on, tmp_path):
    x = padded_inputs(5, 30, 13)
    with cpu_kernel(saved_on):
        keras.utils.set_random_seed(0)
        model = build_model(model_id, 30)
        expected = model.predict(x, verbose=0)
        model.save(tmp_path / "model.keras")
    with cpu_kernel(loaded_on):
        got = load_model(tmp_path / "model.keras").predict(x, verbose=0)
    np.testing.assert_allclose(got, expected, **TOLERANCE)


@pytest.mark.slow
def test_a_two_epoch_fold_trains_on_the_fused_path(tmp_path, fused_calls):
    from test_loso import tiny_features

    from cremad import runs
    from cremad.folds import run_fold

    config = replace(ExperimentConfig(), {"train": {"max_epochs": 2, "batch_size": 16}})
    run_fold(config, tiny_features(), "1003", tmp_path, model_id=2, save_model=False)
    assert fused_calls  # the forward and backward pre-LSTM and the post-LSTM took it
    done = json.loads((tmp_path / runs.DONE).read_text())
    assert done["epochs"] == 2
    history = (tmp_path / runs.HISTORY).read_text().splitlines()
    assert len(history) == 3  # header and two epochs


def test_a_step_compiled_by_xla_runs_keras_loop_and_says_so_once(fused_calls, keras_loops, caplog):
    """XLA has no kernel for BlockLSTMV2: under jit_compile=True the LSTMs run Keras' loop (which
    XLA compiles) and the log says so once; the same model trains fused without it."""
    lstm._say_xla_runs_keras_loop.cache_clear()
    spec = model_spec(2)
    x, y = padded_inputs(4, 12, 13), np.arange(4)
    for jit_compile in (True, False):
        keras.utils.set_random_seed(0)
        model = build_model(2, 12)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", jit_compile=jit_compile)
        fused_calls.clear()
        keras_loops.clear()
        with caplog.at_level("WARNING", logger="cremad.lstm"):
            losses = [float(model.train_on_batch(x, y)) for _ in range(2)]
        assert np.isfinite(losses).all()
        taken, not_taken = (keras_loops, fused_calls) if jit_compile else (fused_calls, keras_loops)
        assert not not_taken and taken, jit_compile
        assert len(taken) % spec.recurrent_calls() == 0  # every recurrent call, once per trace
    said = [record for record in caplog.records if "XLA has no kernel" in record.getMessage()]
    assert len(said) == 1


def test_an_unknown_cpu_kernel_is_refused():
    with pytest.raises(ValueError, match="cpu_kernel must be one of"):
        with cpu_kernel("cudnn"):
            pass
