"""What the models see: the MFCCs z-scored, per clip, per actor or per training set, and the
class weights. numpy only, no Keras: training, the SVM baseline and `cremad predict` share it.

Statistics come from the rows the caller passes (a fold's training actors); nothing here knows
about folds or test actors.
"""

from __future__ import annotations

import numpy as np
from sklearn.utils.class_weight import compute_class_weight

from cremad.config import EMOTIONS, ExperimentConfig


def fit_scaler(
    features: np.ndarray, enabled: bool = True, frame_mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per-coefficient mean and std over the frames of `features` (n_clips, n_frames, n_mfcc):
    every frame, padding included (the padded input as the paper feeds it), or with
    `frame_mask` (n_clips, n_frames) only the frames it marks (each clip's own audio).
    With `enabled=False` the identity (mean 0, std 1) is returned."""
    n_features = features.shape[-1]
    if not enabled:
        return np.zeros(n_features, np.float32), np.ones(n_features, np.float32)
    frames = features.reshape(-1, n_features) if frame_mask is None else features[frame_mask]  # (frames, 13)
    mean = frames.mean(axis=0, dtype=np.float64)
    std = frames.std(axis=0, dtype=np.float64)
    std[std < 1e-8] = 1.0  # a constant coefficient stays constant rather than dividing by zero
    return mean.astype(np.float32), std.astype(np.float32)


def normalize_groups(
    features: np.ndarray, groups: np.ndarray, frame_mask: np.ndarray | None = None, scale: bool = True
) -> np.ndarray:
    """Z-score the clips of `features` (n_clips, ...) group by group (`groups`, one id per clip),
    each with its own group's per-coefficient statistics (`fit_scaler`, over the frames
    `frame_mask` marks, or all frames); with `scale=False` only subtract the group's mean."""
    normalized = np.empty_like(features)
    for group in np.unique(groups):
        rows = np.flatnonzero(groups == group)
        mean, std = fit_scaler(features[rows], frame_mask=None if frame_mask is None else frame_mask[rows])
        normalized[rows] = (features[rows] - mean) / std if scale else features[rows] - mean
    return normalized


def normalize_utterances(x: np.ndarray, frame_mask: np.ndarray | None, mode: str = "none") -> np.ndarray:
    """Per-clip normalization of `x` (n_clips, n_frames, n_mfcc), each clip a group of its own
    (normalize_groups) over the frames `frame_mask` (n_clips, n_frames) marks: "none" returns
    `x`, "mean" subtracts the clip's mean per coefficient, "meanvar" also divides by its std.
    Padding frames are shifted and scaled like their clip (padding_value "zero" then sets them
    to 0)."""
    if mode == "none":
        return x
    if mode not in ("mean", "meanvar"):
        raise ValueError(f"utterance normalization must be 'none', 'mean' or 'meanvar', got {mode!r}")
    if frame_mask is None:
        raise ValueError("utterance normalization needs the frame mask (which frames are the clip's own)")
    return normalize_groups(x, np.arange(len(x)), frame_mask, scale=mode == "meanvar")


def prepare_inputs(
    x: np.ndarray,
    mean: np.ndarray,
    std: np.ndarray,
    padding_value: str = "floor",
    frame_mask: np.ndarray | None = None,
    utterance: str = "none",
) -> np.ndarray:
    """The model's input: `x` (n_clips, n_frames, n_mfcc) normalized per clip (`utterance`, see
    normalize_utterances), then z-scored with `mean`/`std`; with padding_value "zero" the frames
    `frame_mask` leaves out (pure padding) are set to 0."""
    inputs = (normalize_utterances(x, frame_mask, utterance) - mean) / std
    if padding_value == "zero":
        if frame_mask is None:
            raise ValueError("train.padding_value 'zero' needs the frame mask (which frames are padding)")
        inputs = np.where(frame_mask[..., None], inputs, 0.0)
    return inputs.astype(np.float32, copy=False)


def class_weights(labels: np.ndarray, mode: str, n_classes: int = len(EMOTIONS)) -> dict[int, float] | None:
    """Keras class_weight: "balanced" is scikit-learn's n_samples / (n_present_classes * count),
    "none" is None. A class absent from `labels` keeps weight 1 and does not count among the
    present ones."""
    if mode == "none":
        return None
    if mode != "balanced":
        raise ValueError(f"train.class_weight must be 'balanced' or 'none', got {mode!r}")
    labels = np.asarray(labels)
    present = np.unique(labels)
    weights = np.ones(n_classes)
    weights[present] = compute_class_weight("balanced", classes=present, y=labels)
    return {label: float(weight) for label, weight in enumerate(weights)}


def normalize_speakers(
    features: np.ndarray, actors: np.ndarray, frame_mask: np.ndarray | None = None
) -> np.ndarray:
    """Beyond the paper: z-score each actor's clips (n_clips, n_frames, n_mfcc) with that actor's
    own per-coefficient statistics (of the frames `frame_mask` marks, or all frames). It uses no
    labels, so the held-out actor's statistics come from its own audio alone, as a deployed
    system could compute them from a new speaker."""
    return normalize_groups(features, np.asarray(actors), frame_mask)


def model_inputs(config: ExperimentConfig, features, frame_mask: np.ndarray | None = None) -> np.ndarray:
    """Every clip's MFCCs as training starts from them: `features.features`, or with the opt-in
    train.speaker_normalization each actor z-scored by its own statistics (normalize_speakers;
    of the frames `frame_mask` marks when train.standardize_frames is "speech")."""
    if not config.train.speaker_normalization:
        return features.features
    scaler_mask = frame_mask if config.train.standardize_frames == "speech" else None
    return normalize_speakers(features.features, np.asarray(features.actors), scaler_mask)
