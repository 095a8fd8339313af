"""Training one model: arrays in, a trained model out. No folds, no files.

`train_model` standardizes the MFCCs with statistics of the clips it fits, trains with early
stopping on the rows marked for validation, and, with `train.refit`, retrains a fresh model on
every row for the epoch count early stopping chose. The leave-one-actor-out fold runner
(`cremad.folds.run_fold`) and `cremad train` both call it; neither holds anything back from it
but the arrays they pass.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from cremad.config import EMOTIONS, ExperimentConfig


@dataclasses.dataclass
class TrainResult:
    """A trained model and how it was trained."""

    model: Any  # keras.Model, the final one (the refit model with train.refit)
    mean: np.ndarray  # (n_mfcc,) the standardization the final model was trained with
    std: np.ndarray  # (n_mfcc,)
    history: dict[str, list[float]]  # per-epoch Keras logs of the early-stopped run
    refit_history: dict[str, list[float]] | None  # of the refit run; None without refit
    epochs: int  # epochs the early-stopped run trained
    best_epoch: int  # 1-based epoch whose weights it kept (= epochs without validation)

    @property
    def epochs_trained(self) -> int:
        """Every epoch trained, the refit's included."""
        return self.epochs + (self.best_epoch if self.refit_history is not None else 0)


def history_table(history: dict[str, list[float]]) -> tuple[list[str], list[list[float]]]:
    """A Keras history as a table: the header (epoch, then the logs by name) and a row per epoch."""
    keys = sorted(history)
    return ["epoch", *keys], [[epoch, *map(float, values)] for epoch, values in enumerate(zip(*(history[key] for key in keys)))]


def fit_scaler(features: np.ndarray, enabled: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Per-coefficient mean and std over every frame of `features` (n_clips, n_frames, n_mfcc).

    Zero-padding frames are included: the paper pads every clip to the longest and feeds the
    padded sequence as it is, so the padding is part of the input the model sees and the
    statistics describe that input (there is also no padding mask in the models to respect).
    With `enabled=False` the identity (mean 0, std 1) is returned."""
    n_features = features.shape[-1]
    if not enabled:
        return np.zeros(n_features, np.float32), np.ones(n_features, np.float32)
    frames = features.reshape(-1, n_features)
    mean = frames.mean(axis=0, dtype=np.float64)
    std = frames.std(axis=0, dtype=np.float64)
    std[std < 1e-8] = 1.0  # a constant coefficient stays constant rather than dividing by zero
    return mean.astype(np.float32), std.astype(np.float32)


def class_weights(labels: np.ndarray, mode: str, n_classes: int = len(EMOTIONS)) -> dict[int, float] | None:
    """Keras class_weight: "balanced" is n_samples / (n_present_classes * count), "none" is None.
    A class absent from `labels` keeps weight 1 and does not count among the present ones."""
    if mode == "none":
        return None
    if mode != "balanced":
        raise ValueError(f"train.class_weight must be 'balanced' or 'none', got {mode!r}")
    counts = np.bincount(labels, minlength=n_classes)
    present = counts > 0
    weights = np.ones(n_classes)
    weights[present] = len(labels) / (present.sum() * counts[present])
    return {label: float(weight) for label, weight in enumerate(weights)}


def fit_model(config: ExperimentConfig, model_id: int, seed: int, x, y, validation, callbacks,
              verbose: int = 0, epochs: int | None = None):
    """Build, compile (optimizer and learning rate from config.train, sparse categorical
    cross-entropy) and fit model `model_id` from seed `seed` on arrays already standardized.
    With `validation` data, early stopping (best weights restored) and the plateau schedule
    watch its loss. Returns the model, its history (per-epoch logs) and the EarlyStopping
    callback (None without validation)."""
    import keras

    from cremad.models import build_model

    train = config.train
    keras.backend.clear_session()  # drop the previous model's graphs; many folds share a process
    keras.utils.set_random_seed(seed)
    model = build_model(model_id, n_frames=x.shape[1], n_features=x.shape[2], n_classes=len(EMOTIONS),
                        config=config.model)
    optimizer = keras.optimizers.get({"class_name": train.optimizer, "config": {"learning_rate": train.learning_rate}})
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    early_stopping = None
    callbacks = list(callbacks)
    if validation is not None:
        early_stopping = keras.callbacks.EarlyStopping(monitor="val_loss", patience=train.patience,
                                                       restore_best_weights=True)
        callbacks = [early_stopping, *callbacks]
        if train.reduce_lr_patience > 0:
            callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5,
                                                               patience=train.reduce_lr_patience))
    history = model.fit(x, y, validation_data=validation, epochs=epochs or train.max_epochs,
                        batch_size=train.batch_size, class_weight=class_weights(y, train.class_weight),
                        shuffle=True, callbacks=callbacks, verbose=1 if verbose else 0)
    return model, history.history, early_stopping


def train_model(config: ExperimentConfig, model_id: int, x: np.ndarray, y: np.ndarray,
                validation: np.ndarray | None = None, seed: int = 0, callbacks=(), verbose: int = 0) -> TrainResult:
    """Train paper model `model_id` on raw MFCCs `x` (n_clips, n_frames, n_mfcc) with labels `y`
    (EMOTIONS indices).

    `validation` is a boolean mask over the rows of `x`: those rows only watch early stopping
    and the learning-rate schedule; the model fits the others, and the standardization comes
    from them. With config.train.refit, a fresh model (same seed) then trains on every row, in
    the given order, for the best epoch count, replaying the first run's learning rates, with
    statistics of every row. Without a mask the model trains config.train.max_epochs on every
    row. `callbacks` are extra Keras callbacks (e.g. a timer)."""
    import keras

    train = config.train
    y = np.asarray(y)
    if validation is None:
        mean, std = fit_scaler(x, enabled=train.standardize)
        model, history, _ = fit_model(config, model_id, seed, (x - mean) / std, y, None, callbacks, verbose)
        epochs = len(history["loss"])
        return TrainResult(model, mean, std, history, None, epochs, epochs)

    validation = np.asarray(validation, dtype=bool)
    if validation.shape != (len(x),) or validation.all() or not validation.any():
        raise ValueError("validation must mark some, not all, of the rows of x")
    mean, std = fit_scaler(x[~validation], enabled=train.standardize)  # fit rows only
    x_fit, y_fit = (x[~validation] - mean) / std, y[~validation]  # (n_fit, frames, 13)
    x_validation, y_validation = (x[validation] - mean) / std, y[validation]
    model, history, early_stopping = fit_model(config, model_id, seed, x_fit, y_fit, (x_validation, y_validation),
                                               callbacks, verbose)
    epochs, best_epoch = len(history["loss"]), early_stopping.best_epoch + 1
    refit_history = None
    if train.refit:
        # Early stopping only chose the epoch count; now every row trains a fresh model for that
        # long, with the learning rates the first run used, and a scaler of them all.
        # (ReduceLROnPlateau logs the rate of each epoch; without it the rate never changed.)
        logged = history.get("learning_rate", [train.learning_rate] * best_epoch)
        learning_rates = [float(rate) for rate in logged[:best_epoch]]
        mean, std = fit_scaler(x, enabled=train.standardize)
        schedule = keras.callbacks.LearningRateScheduler(lambda epoch: learning_rates[epoch])
        model, refit_history, _ = fit_model(config, model_id, seed, (x - mean) / std, y, None,
                                            [*callbacks, schedule], verbose, epochs=best_epoch)
    return TrainResult(model, mean, std, history, refit_history, epochs, best_epoch)
