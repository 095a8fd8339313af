"""The models as facts, without Keras: one record per model (how `cremad.models.build_model`
composes it, whether it is one of the paper's four, how Fig. 2 draws it), the SVM baselines'
names, and how a seed ensemble and a fusion of two results are named. Tables, figures, run
folders, the CLI and the tests read these without paying for importing Keras; adding a model is
one record here and its encoder in `cremad.models`.
"""

from __future__ import annotations

import dataclasses
import re


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """One model that `cremad.models.build_model` can build."""

    model_id: int
    encoder: str  # the pre-LSTM stage (Fig. 1's first box): "lstm" is the paper's
    bidirectional: bool  # the encoder runs both directions, outputs concatenated
    attention: bool  # the attention block feeds a stepped post-LSTM; else it reads every frame
    paper: bool  # one of the paper's four: Table II, Fig. 2 and the missing-model warnings
    label: str  # what Fig. 2's panel title calls it
    colour: str  # its curve in Fig. 2

    @property
    def name(self) -> str:
        """Its name in run folders, recipes ([model2]) and tables: "model2"."""
        return f"model{self.model_id}"


MODELS = (
    ModelSpec(
        1, "lstm", bidirectional=False, attention=True, paper=True, label="uni-directional", colour="tab:red"
    ),
    ModelSpec(
        2, "lstm", bidirectional=True, attention=True, paper=True, label="bi-directional", colour="tab:blue"
    ),
    ModelSpec(
        3,
        "lstm",
        bidirectional=False,
        attention=False,
        paper=True,
        label="uni-directional",
        colour="tab:green",
    ),
    ModelSpec(
        4,
        "lstm",
        bidirectional=True,
        attention=False,
        paper=True,
        label="bi-directional",
        colour="tab:orange",
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
