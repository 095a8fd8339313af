"""The models as facts, without Keras: one record per model (how `cremad.models.build_model`
composes it: the cell of each recurrent layer, direction, attention; whether it is one of the
paper's four, how Fig. 2 draws it), the SVM baselines' names, and how a seed ensemble and a
fusion of two results are named. Tables, figures, run folders, the CLI, the benchmarks and the
tests read these without paying for importing Keras; adding a model is one record here.
"""

from __future__ import annotations

import dataclasses
import re


@dataclasses.dataclass(frozen=True)
class Cell:
    """A recurrent cell a model's layers can use: how many gates (weight blocks per unit) and
    states it has. Keras builds it with the arguments that put it on cuDNN on a GPU; under
    TensorFlow on a CPU an LSTM runs `cremad.lstm`'s fused kernel, a GRU Keras' own loop."""

    name: str  # "lstm": Keras' layer class in lower case, and the name part of its layers
    gates: int  # weight blocks per unit: the kernels are (inputs, gates * units)
    states: int  # states carried between steps and passed as initial_state
    fused_cpu: bool  # whether cremad.lstm's fused CPU kernel runs it under TensorFlow
    cudnn_backends: tuple[str, ...]  # the Keras backends that run it as one cuDNN kernel on a GPU


CELLS = {
    # gates i, f, c, o; states h, c
    "lstm": Cell("lstm", gates=4, states=2, fused_cpu=True, cudnn_backends=("tensorflow", "jax", "torch")),
    # gates z, r, h; state h. JAX has no cuDNN GRU (jax.experimental.rnn is an LSTM): a lax.scan there.
    "gru": Cell("gru", gates=3, states=1, fused_cpu=False, cudnn_backends=("tensorflow", "torch")),
}


@dataclasses.dataclass(frozen=True)
class RecurrentLayer:
    """One recurrent layer of a model, as `ModelSpec.recurrent_layers` lists them."""

    role: str  # "pre" (Fig. 1's encoder) or "post" (the layer after attention)
    cell: Cell
    directions: int  # 2: a Bidirectional wrapper holding two layers of this cell
    calls: int  # times the model calls each direction: the post layer once per decoder step

    @property
    def name(self) -> str:
        """The layer's name in a built model: "pre_lstm", "post_gru"."""
        return f"{self.role}_{self.cell.name}"


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """One model that `cremad.models.build_model` can build: what it is made of."""

    model_id: int
    bidirectional: bool  # the encoder runs both directions, outputs concatenated
    attention: bool  # the attention block feeds a stepped post layer; else it reads every frame
    paper: bool  # one of the paper's four: Table II, Fig. 2 and the missing-model warnings
    label: str  # what Fig. 2's panel title calls it
    colour: str  # its curve in Fig. 2
    pre_cell: str = "lstm"  # the encoder's cell (Fig. 1's pre-LSTM), a key of CELLS
    post_cell: str = "lstm"  # the post-attention layer's cell (Fig. 1's post-LSTM)

    def __post_init__(self):
        for key in ("pre_cell", "post_cell"):
            if getattr(self, key) not in CELLS:
                raise ValueError(f"{key} must be one of {tuple(CELLS)}, got {getattr(self, key)!r}")

    @property
    def name(self) -> str:
        """Its name in run folders, recipes ([model2]) and tables: "model2"."""
        return f"model{self.model_id}"

    def recurrent_layers(self, decoder_steps: int = 1) -> tuple[RecurrentLayer, ...]:
        """Its recurrent layers in build order: the encoder, then the post layer (shared by the
        decoder steps of an attention model)."""
        return (
            RecurrentLayer("pre", CELLS[self.pre_cell], 2 if self.bidirectional else 1, 1),
            RecurrentLayer("post", CELLS[self.post_cell], 1, decoder_steps if self.attention else 1),
        )

    def recurrent_calls(self, cell: str | None = None, decoder_steps: int = 1) -> int:
        """How many recurrent kernels one forward pass runs (of `cell` only, when given): one per
        direction per call."""
        return sum(
            layer.directions * layer.calls
            for layer in self.recurrent_layers(decoder_steps)
            if cell is None or layer.cell.name == cell
        )


MODELS = (
    ModelSpec(1, bidirectional=False, attention=True, paper=True, label="uni-directional", colour="tab:red"),
    ModelSpec(2, bidirectional=True, attention=True, paper=True, label="bi-directional", colour="tab:blue"),
    ModelSpec(
        3, bidirectional=False, attention=False, paper=True, label="uni-directional", colour="tab:green"
    ),
    ModelSpec(
        4, bidirectional=True, attention=False, paper=True, label="bi-directional", colour="tab:orange"
    ),
)
MODEL_SPECS = {spec.model_id: spec for spec in MODELS}
MODEL_IDS = tuple(MODEL_SPECS)  # every model that can be built
PAPER_MODEL_IDS = tuple(spec.model_id for spec in MODELS if spec.paper)  # the paper's models 1-4
ATTENTION_MODEL_IDS = tuple(spec.model_id for spec in MODELS if spec.attention)
BIDIRECTIONAL_MODEL_IDS = tuple(spec.model_id for spec in MODELS if spec.bidirectional)
# Fig. 2's panels: the paper's models with attention.
FIG2_MODEL_IDS = tuple(model_id for model_id in PAPER_MODEL_IDS if model_id in ATTENTION_MODEL_IDS)
ATTENTION_WEIGHTS = "attention_weights"  # name (prefix) of the softmax-over-time layer(s)
BASELINE_MODEL_NAMES = {"mfcc": "svm", "rich": "svm-rich"}  # run-folder model name per functional set
AUGMENTED_SUFFIX = "-aug"  # "svm-rich-aug": the baseline trained on the experiment's augmented copies too
BASELINE_NAMES = frozenset(
    name + suffix for name in BASELINE_MODEL_NAMES.values() for suffix in ("", AUGMENTED_SUFFIX)
)
ENSEMBLE_SUFFIX = "-ensemble"  # "model2-ensemble": model 2's seeds, class probabilities averaged
FUSION_SEPARATOR = "+"  # "model2-ensemble+svm-rich": two results' probabilities averaged
_MODEL_NAME = re.compile(r"^model(?P<model_id>\d+)$")


def model_spec(model_id: int) -> ModelSpec:
    """The record of model `model_id`; ValueError naming the known ids otherwise."""
    if model_id not in MODEL_SPECS:
        raise ValueError(f"model_id must be one of {MODEL_IDS}, got {model_id!r}")
    return MODEL_SPECS[model_id]


def model_name(model_id: int) -> str:
    """The name of model `model_id` in run folders and tables: "model2"."""
    return model_spec(model_id).name


def model_id_of(name: str) -> int | None:
    """The model number of a run's model name ("model2" -> 2); None for any other estimator
    (a baseline such as "svm") or an id no record has."""
    match = _MODEL_NAME.match(name)
    return int(match["model_id"]) if match and int(match["model_id"]) in MODEL_SPECS else None


def paper_model_id(name: str) -> int | None:
    """The paper model number of a run's model name ("model2" -> 2); None for any other model
    or estimator."""
    model_id = model_id_of(name)
    return model_id if model_id in PAPER_MODEL_IDS else None


def model_ids_text(model_ids=PAPER_MODEL_IDS, separator: str = ",") -> str:
    """Model ids as a CLI default or a Makefile loop reads them: "1,2,3,4"."""
    return separator.join(str(model_id) for model_id in model_ids)


def ensemble_name(model: str) -> str:
    """The name of `model`'s seed ensemble: "model2" -> "model2-ensemble"."""
    return f"{model}{ENSEMBLE_SUFFIX}"


def fusion_name(first: str, second: str) -> str:
    """The name of the fusion of two results: "model2-ensemble+svm-rich"."""
    return f"{first}{FUSION_SEPARATOR}{second}"


def model_label(name: str) -> str:
    """How tables and figures name a model: "Model 2" for a model, "Model 2, seeds averaged"
    for its seed ensemble, "Model 2, seeds averaged + svm-rich" for a fusion, the name otherwise."""
    if FUSION_SEPARATOR in name:
        return " + ".join(model_label(part) for part in name.split(FUSION_SEPARATOR))
    if name.endswith(ENSEMBLE_SUFFIX):
        return f"{model_label(name.removesuffix(ENSEMBLE_SUFFIX))}, seeds averaged"
    model_id = model_id_of(name)
    return f"Model {model_id}" if model_id is not None else name


def add_arguments(parser) -> None:
    parser.add_argument(
        "--all", action="store_true", help="every model that can be built, not only the paper's four"
    )


def run(args) -> int:
    """`cremad models`: the model ids, one line, space-separated (what the Makefile loops over)."""
    print(model_ids_text(MODEL_IDS if args.all else PAPER_MODEL_IDS, " "))
    return 0
