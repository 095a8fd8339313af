"""The paper's four models (sections II-D to II-G, Fig. 1), Keras functional API.

    model 1: pre-LSTM -> Dropout -> attention -> post-LSTM -> Dense softmax
    model 2: model 1 with a Bidirectional pre-LSTM (forward and backward outputs concatenated)
    model 3: pre-LSTM -> Dropout -> post-LSTM over the whole sequence -> Dense softmax
    model 4: model 3 with a Bidirectional pre-LSTM

The paper's LSTMs are CuDNNLSTM. Keras 3 picks the cuDNN kernel on a GPU by itself (TensorFlow,
JAX and PyTorch backends alike) when a layer keeps cuDNN's fixed recipe: tanh / sigmoid
activations, a bias, no recurrent dropout, no unrolling and no mask (and reset_after for a GRU).
Every recurrent layer here is built by `recurrent_layer`, which pins that recipe; input dropout
is a separate Dropout layer, and there is no Masking layer anywhere (CuDNNLSTM had none; the
attention learns to ignore padded silence). On a CPU under TensorFlow the same layer
(`cremad.lstm.LSTM`, Keras' LSTM with the same weights and config) runs a fused recurrence
instead of Keras' loop of small ops. Only backend-agnostic `keras.ops` are used, so the models
run on all three backends.

The facts about the models (one `ModelSpec` each: the cell of each recurrent layer, direction,
attention, whether the paper has it) live in `cremad.model_names`, which needs no Keras;
`build_model` composes a model from its record, each cell's layer from `RECURRENT_LAYERS`.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from cremad.config import ModelConfig
from cremad.lstm import LSTM
from cremad.model_names import ATTENTION_WEIGHTS, ModelSpec, model_spec


@keras.saving.register_keras_serializable(package="cremad")
class ZeroState(layers.Layer):
    """s<0> and c<0> of the post-LSTM: zeros of shape (batch, units), sized from the input's
    batch. A registered layer rather than a Lambda so `.keras` files load without unsafe code."""

    def __init__(self, units: int, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def call(self, inputs):
        return ops.zeros((ops.shape(inputs)[0], self.units), dtype=self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def load_model(path):
    """Load a `.keras` file holding one of these models (ZeroState is registered above) for
    prediction. Uncompiled: the loss and optimizer a recipe trained with stay with training, so
    a model trained with any option loads in a process that imports nothing from training."""
    return keras.models.load_model(path, compile=False)


# A Cell's name -> the Keras layer that runs it: LSTMs take the fused CPU kernel of cremad.lstm.
RECURRENT_LAYERS = {"lstm": LSTM, "gru": layers.GRU}


def recurrent_layer(cell: str, units: int, name: str, **kwargs) -> layers.RNN:
    """A recurrent layer of `cell` (a key of `cremad.model_names.CELLS`) that runs on the cuDNN
    kernel when a GPU is there (CuDNNLSTM's recipe; a GRU also keeps reset_after, cuDNN's
    convention), and an LSTM on the fused CPU recurrence of `cremad.lstm` under TensorFlow
    without one."""

    if cell == "gru":
        kwargs["reset_after"] = True
    return RECURRENT_LAYERS[cell](
        units,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias=True,
        dropout=0.0,
        recurrent_dropout=0.0,
        unroll=False,
        use_cudnn="auto",  # True would refuse to run on a CPU
        name=name,
        **kwargs,
    )


def pre_layer(inputs, units: int, spec: ModelSpec):
    """Encoder (Fig. 1's pre-LSTM): p<1..x>, one output per frame (a bidirectional one
    concatenates both directions)."""

    encoder = spec.recurrent_layers()[0]
    if encoder.directions == 2:
        inner = recurrent_layer(encoder.cell.name, units, name=encoder.cell.name, return_sequences=True)
        # wrapped as forward_lstm and backward_lstm (forward_gru, ... for a GRU)
        return layers.Bidirectional(inner, merge_mode="concat", name=encoder.name)(inputs)
    return recurrent_layer(encoder.cell.name, units, name=encoder.name, return_sequences=True)(inputs)


def attention_block(pre_outputs, s_prev, energy_dense, score_dense, suffix: str = ""):
    """Fig. 1's dotted box for one post-LSTM step t: equation (1).

    pre_outputs: p<1..x> (batch, x, P); s_prev: s<t-1> (batch, post_units). The two Dense
    layers carry the block's weights and are passed in so every decoder step shares them.
    Returns context<t> (batch, 1, P) and a<t, 1..x> (batch, x, 1)."""

    n_frames = pre_outputs.shape[1]
    repeated = layers.RepeatVector(n_frames, name=f"attention_repeat{suffix}")(s_prev)  # (B, x, S)
    concatenated = layers.Concatenate(axis=-1, name=f"attention_concat{suffix}")(
        [pre_outputs, repeated]
    )  # (B, x, P + S)
    energies = score_dense(energy_dense(concatenated))  # e<t, t'>: (B, x, 1)
    weights = layers.Softmax(axis=1, name=f"{ATTENTION_WEIGHTS}{suffix}")(energies)  # over time
    context = layers.Dot(axes=1, name=f"attention_context{suffix}")([weights, pre_outputs])
    return context, weights  # (B, 1, P), (B, x, 1)


def build_model(
    model: int | ModelSpec,
    n_frames: int,
    n_features: int = 13,
    n_classes: int = 6,
    config: ModelConfig = ModelConfig(),
) -> keras.Model:
    """Build a model for inputs of shape (n_frames, n_features) from its record: `model` is a
    `cremad.model_names.ModelSpec`, or the id of one of `cremad.model_names.MODELS`.

    Models with attention (the paper's 1 and 2) run the attention block and the post layer for
    `config.decoder_steps` steps (default 1: one label per utterance, one attention curve per
    clip as in Fig. 2), starting from zero states (s<0> = c<0> = 0 for an LSTM), with the same
    post layer at every step; the Dense softmax reads the last s<t>. The others (3 and 4) feed
    the whole dropped-out encoder sequence to the post layer.
    Returns an uncompiled keras.Model named "model<k>"."""

    spec = model if isinstance(model, ModelSpec) else model_spec(model)
    if n_frames < 1 or n_features < 1 or n_classes < 2:
        raise ValueError(
            f"need n_frames >= 1, n_features >= 1, n_classes >= 2; got {n_frames}, {n_features}, {n_classes}"
        )
    if config.decoder_steps < 1:
        raise ValueError(f"decoder_steps must be >= 1, got {config.decoder_steps}")

    inputs = keras.Input(shape=(n_frames, n_features), name="mfcc")  # (B, x, 13)
    pre_outputs = pre_layer(inputs, config.pre_units, spec)  # (B, x, P)
    pre_outputs = layers.Dropout(config.dropout_rate, name="dropout")(pre_outputs)

    post = spec.recurrent_layers()[1]
    if spec.attention:
        energy_dense = layers.Dense(config.attention_units, activation="tanh", name="attention_energy")
        score_dense = layers.Dense(1, activation="relu", name="attention_score")
        post_layer = recurrent_layer(post.cell.name, config.post_units, name=post.name, return_state=True)
        zero = ZeroState(config.post_units, name=f"{post.name}_initial_state")(inputs)  # (B, S)
        s, states = zero, [zero] * post.cell.states  # s<0>, and c<0> for an LSTM
        for step in range(1, config.decoder_steps + 1):
            suffix = f"_{step}" if config.decoder_steps > 1 else ""
            context, _ = attention_block(pre_outputs, s, energy_dense, score_dense, suffix)
            s, *states = post_layer(context, initial_state=states)  # s<t>, then its states: (B, S)
            states[0] = s  # h<t> is s<t>
        final_state = s
    else:
        final_state = recurrent_layer(post.cell.name, config.post_units, name=post.name)(
            pre_outputs
        )  # (B, S)

    outputs = layers.Dense(n_classes, activation="softmax", name="output")(final_state)
    return keras.Model(inputs, outputs, name=spec.name)


def recurrent_layers(model: keras.Model, cell: str | None = None) -> list[keras.layers.RNN]:
    """Every recurrent layer in `model` at any depth (of `cell` only, a key of
    `cremad.model_names.CELLS`, when given): inside nested models (training's input-noise wrapper
    holds the paper's model) and Bidirectional wrappers (forward, then backward)."""

    found = []
    for layer in model.layers:
        if isinstance(layer, layers.Bidirectional):
            found += [layer.forward_layer, layer.backward_layer]
        elif isinstance(layer, layers.RNN):
            found.append(layer)
        elif isinstance(layer, keras.Model):
            found += recurrent_layers(layer)
    return [layer for layer in found if cell is None or cell_of(layer) == cell]


def cell_of(layer: keras.layers.RNN) -> str:
    """The name of `layer`'s cell as `cremad.model_names.CELLS` spells it: "lstm" for an
    LSTMCell, "gru" for a GRUCell."""
    return type(layer.cell).__name__.removesuffix("Cell").lower()


def lstm_layers(model: keras.Model) -> list[keras.layers.LSTM]:
    """Every LSTM in `model` at any depth (`recurrent_layers` of the LSTM cell)."""
    return recurrent_layers(model, "lstm")


def attention_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The softmax-over-time layers of an attention model, in decoder-step order."""
    found = [
        layer
        for layer in model.layers
        if layer.name == ATTENTION_WEIGHTS or layer.name.startswith(f"{ATTENTION_WEIGHTS}_")
    ]
    return sorted(found, key=lambda layer: int(layer.name[len(ATTENTION_WEIGHTS) + 1 :] or 0))


def attention_model(model: keras.Model) -> keras.Model:
    """A model sharing `model`'s weights that maps its input to the attention weights
    a<t, t'>, shape (batch, decoder_steps, n_frames). Models with attention only."""

    found = attention_layers(model)
    if not found:
        raise ValueError(f"{model.name} has no attention layer (a model without attention)")
    steps = [layers.Reshape((1, -1))(layer.output) for layer in found]  # each (B, 1, x)
    weights = steps[0] if len(steps) == 1 else layers.Concatenate(axis=1)(steps)
    return keras.Model(model.input, weights, name=f"{model.name}_attention")
