"""The paper's four models as facts, without Keras: their ids and names, which run the
attention block, which have a BiLSTM. Tables, figures and run folders read these without
paying for importing Keras; `cremad.models` builds the models themselves.
"""

from __future__ import annotations

import re

MODEL_IDS = (1, 2, 3, 4)
ATTENTION_MODEL_IDS = (1, 2)  # models 1 and 2 run the attention block; 3 and 4 do not
BIDIRECTIONAL_MODEL_IDS = (2, 4)  # a BiLSTM pre-LSTM
ATTENTION_WEIGHTS = "attention_weights"  # name (prefix) of the softmax-over-time layer(s)
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


def model_label(name: str) -> str:
    """How tables and figures name a model: "Model 2" for the paper's, the name otherwise."""
    model_id = paper_model_id(name)
    return f"Model {model_id}" if model_id is not None else name
