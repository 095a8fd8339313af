"""The paper's four models as facts, without Keras: their ids and names, which run the
attention block, which have a BiLSTM; the SVM baselines' names; and how a seed ensemble and a
fusion of two results are named. Tables, figures and run folders read these without paying for
importing Keras; `cremad.models` builds the models themselves.
"""

from __future__ import annotations

import re

MODEL_IDS = (1, 2, 3, 4)
ATTENTION_MODEL_IDS = (1, 2)  # models 1 and 2 run the attention block; 3 and 4 do not
BIDIRECTIONAL_MODEL_IDS = (2, 4)  # a BiLSTM pre-LSTM
ATTENTION_WEIGHTS = "attention_weights"  # name (prefix) of the softmax-over-time layer(s)
BASELINE_MODEL_NAMES = {"mfcc": "svm", "rich": "svm-rich"}  # run-folder model name per functional set
ENSEMBLE_SUFFIX = "-ensemble"  # "model2-ensemble": model 2's seeds, class probabilities averaged
FUSION_SEPARATOR = "+"  # "model2-ensemble+svm-rich": two results' probabilities averaged
_MODEL_NAME = re.compile(r"^model(?P<model_id>\d+)$")


def model_name(model_id: int) -> str:
    """The name of paper model `model_id` in run folders and tables: "model2"."""
    if model_id not in MODEL_IDS:
        raise ValueError(f"model_id must be one of {MODEL_IDS}, got {model_id!r}")
    return f"model{model_id}"


def paper_model_id(name: str) -> int | None:
    """The paper model number of a run's model name ("model2" -> 2); None for any other
    estimator (a baseline such as "svm")."""
    match = _MODEL_NAME.match(name)
    return int(match["model_id"]) if match and int(match["model_id"]) in MODEL_IDS else None


def ensemble_name(model: str) -> str:
    """The name of `model`'s seed ensemble: "model2" -> "model2-ensemble"."""
    return f"{model}{ENSEMBLE_SUFFIX}"


def fusion_name(first: str, second: str) -> str:
    """The name of the fusion of two results: "model2-ensemble+svm-rich"."""
    return f"{first}{FUSION_SEPARATOR}{second}"


def model_label(name: str) -> str:
    """How tables and figures name a model: "Model 2" for the paper's, "Model 2, seeds averaged"
    for its seed ensemble, "Model 2, seeds averaged + svm-rich" for a fusion, the name otherwise."""
    if FUSION_SEPARATOR in name:
        return " + ".join(model_label(part) for part in name.split(FUSION_SEPARATOR))
    if name.endswith(ENSEMBLE_SUFFIX):
        return f"{model_label(name.removesuffix(ENSEMBLE_SUFFIX))}, seeds averaged"
    model_id = paper_model_id(name)
    return f"Model {model_id}" if model_id is not None else name
