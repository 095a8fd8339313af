"""Training one model: arrays in, a trained model out. No folds, no files.

`train_model` standardizes the MFCCs with statistics of the clips it fits, trains with early
stopping on the rows marked for validation, and, with `train.refit`, retrains a fresh model on
every row for the epoch count early stopping chose. The leave-one-actor-out fold runner
(`cremad.folds.run_fold`) and `cremad train` both call it; neither holds anything back from it
but the arrays they pass.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
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


def limit_threads(threads: int | None) -> None:
    """Run TensorFlow's CPU kernels on `threads` threads (None: TensorFlow's choice, every core).
    These LSTMs are small: on a 2-core machine two single-threaded runs side by side (loso --jobs 2)
    did 1.15-2.1 times the work of one run on both cores (bench/bench_jobs.py). Must run before
    TensorFlow executes its first op; other Keras backends are left alone."""
    if threads is None:
        return
    if threads < 1:
        raise ValueError(f"--threads must be at least 1, got {threads}")
    import keras

    if keras.config.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)


def history_table(history: dict[str, list[float]]) -> tuple[list[str], list[list[float]]]:
    """A Keras history as a table: the header (epoch, then the logs by name) and a row per epoch."""
    keys = sorted(history)
    return ["epoch", *keys], [
        [epoch, *map(float, values)] for epoch, values in enumerate(zip(*(history[key] for key in keys)))
    ]


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


def UnweightedAccuracy(x, y):  # noqa: N802 (a Keras callback factory)
    """A Keras callback logging `val_ua`, the unweighted accuracy (mean recall over the classes
    present) of the model on (x, y) after every epoch."""
    import keras
    from sklearn.metrics import balanced_accuracy_score

    class _UnweightedAccuracy(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            predicted = self.model.predict(x, batch_size=256, verbose=0).argmax(axis=1)
            if logs is not None:
                with warnings.catch_warnings():  # predicting a class the watched actor lacks is normal
                    warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
                    logs["val_ua"] = float(balanced_accuracy_score(y, predicted))

    return _UnweightedAccuracy()


def SpeechFrameNoise(stddev: float, seed: int):  # noqa: N802 (a Keras layer factory)
    """A Keras layer that, in training only, adds N(0, stddev) noise to every frame that is not
    pure padding (padding frames are all zeros after prepare_inputs' "zero" padding value and
    stay so); at inference it passes its input through."""
    import keras

    class _SpeechFrameNoise(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.seed_generator = keras.random.SeedGenerator(seed)

        def call(self, x, training=False):
            if not training:
                return x
            ops = keras.ops
            own = ops.cast(ops.any(ops.not_equal(x, 0.0), axis=-1, keepdims=True), x.dtype)  # (B, frames, 1)
            return x + own * keras.random.normal(ops.shape(x), stddev=stddev, seed=self.seed_generator)

    return _SpeechFrameNoise(name="speech_frame_noise")


def fit_model(
    config: ExperimentConfig,
    model_id: int,
    seed: int,
    x,
    y,
    validation,
    callbacks,
    verbose: int = 0,
    epochs: int | None = None,
):
    """Build, compile (optimizer and learning rate from config.train, sparse categorical
    cross-entropy) and fit model `model_id` from seed `seed` on arrays already standardized.
    With `validation` data and train.early_stopping, early stopping (best weights restored) and
    the plateau schedule watch its loss; without train.early_stopping the validation data is
    only watched: its loss, accuracy and unweighted accuracy (`val_ua`) are logged per epoch.
    Returns the model, its history (per-epoch logs) and the EarlyStopping callback (None
    when nothing stopped early)."""
    import keras

    from cremad.models import build_model

    train = config.train
    keras.backend.clear_session()  # drop the previous model's graphs; many folds share a process
    keras.utils.set_random_seed(seed)
    model = build_model(
        model_id, n_frames=x.shape[1], n_features=x.shape[2], n_classes=len(EMOTIONS), config=config.model
    )
    epochs = epochs or train.max_epochs
    learning_rate = train.learning_rate
    if train.lr_schedule == "cosine":  # from learning_rate to 0 over every batch of the run
        steps = epochs * math.ceil(len(x) / train.batch_size)
        learning_rate = keras.optimizers.schedules.CosineDecay(train.learning_rate, decay_steps=steps)
    settings = {"learning_rate": learning_rate}
    if train.ema_momentum > 0:  # fit ends by copying the averaged weights into the model
        settings.update(use_ema=True, ema_momentum=train.ema_momentum)
    optimizer = keras.optimizers.get({"class_name": train.optimizer, "config": settings})
    fitted = model  # what model.fit runs: the paper's model, or it behind the training-only noise
    if train.input_noise > 0:
        fitted = keras.Sequential(
            [keras.Input(shape=x.shape[1:]), SpeechFrameNoise(train.input_noise, seed), model],
            name=f"{model.name}_with_noise",
        )
    fitted.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    early_stopping = None
    callbacks = list(callbacks)
    if validation is not None and not train.early_stopping:
        callbacks.append(UnweightedAccuracy(*validation))
    elif validation is not None:
        early_stopping = keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=train.patience, restore_best_weights=True
        )
        callbacks = [early_stopping, *callbacks]
        if train.reduce_lr_patience > 0:
            callbacks.append(
                keras.callbacks.ReduceLROnPlateau(
                    monitor="val_loss", factor=0.5, patience=train.reduce_lr_patience
                )
            )
    if train.ema_momentum > 0 and validation is not None:
        # Validate, log and early-stop on the averaged weights, the ones fit leaves in the model:
        # this swaps them in at every epoch's end, before the other callbacks run.
        callbacks.insert(0, keras.callbacks.SwapEMAWeights(swap_on_epoch=True))
    history = fitted.fit(
        x,
        y,
        validation_data=validation,
        epochs=epochs,
        batch_size=train.batch_size,
        class_weight=class_weights(y, train.class_weight),
        shuffle=True,
        callbacks=callbacks,
        verbose=1 if verbose else 0,
    )
    return model, history.history, early_stopping


def train_model(
    config: ExperimentConfig,
    model_id: int,
    x: np.ndarray,
    y: np.ndarray,
    validation: np.ndarray | None = None,
    seed: int = 0,
    callbacks=(),
    verbose: int = 0,
    frame_mask: np.ndarray | None = None,
) -> TrainResult:
    """Train paper model `model_id` on raw MFCCs `x` (n_clips, n_frames, n_mfcc) with labels `y`
    (EMOTIONS indices).

    `validation` is a boolean mask over the rows of `x`: those rows only watch training (early
    stopping and the learning-rate schedule, or with train.early_stopping off the logged
    `val_*` curves); the model fits the others, and the standardization comes from them. With
    config.train.refit, a fresh model (same seed) then trains on every row, in the given order,
    for the best epoch count, replaying the first run's learning rates, with statistics of every
    row. Without a mask the model trains config.train.max_epochs on every row. `frame_mask`
    (n_clips, n_frames) marks each clip's own frames; train.standardize_frames "speech",
    train.padding_value "zero" and train.utterance_normalization need it. The scaler returned
    describes the per-clip-normalized MFCCs (prepare_inputs redoes that step). `callbacks` are
    extra Keras callbacks (e.g. a timer)."""
    import keras

    train = config.train
    y = np.asarray(y)
    if train.needs_frame_mask and frame_mask is None:
        raise ValueError(
            "train.standardize_frames 'speech' / padding_value 'zero' / utterance_normalization "
            "need frame_mask"
        )
    if frame_mask is not None and frame_mask.shape != x.shape[:2]:
        raise ValueError(f"frame_mask has shape {frame_mask.shape}, expected {x.shape[:2]}")
    scaler_mask = frame_mask if train.standardize_frames == "speech" else None
    x = normalize_utterances(x, frame_mask, train.utterance_normalization)  # per clip, before the scaler

    def scaler_of(rows):  # statistics of these rows only
        return fit_scaler(x[rows], train.standardize, None if scaler_mask is None else scaler_mask[rows])

    def inputs_of(rows, mean, std):
        return prepare_inputs(
            x[rows], mean, std, train.padding_value, None if frame_mask is None else frame_mask[rows]
        )

    every = np.ones(len(x), dtype=bool)
    if validation is None:
        mean, std = scaler_of(every)
        model, history, _ = fit_model(
            config, model_id, seed, inputs_of(every, mean, std), y, None, callbacks, verbose
        )
        epochs = len(history["loss"])
        return TrainResult(model, mean, std, history, None, epochs, epochs)

    validation = np.asarray(validation, dtype=bool)
    if validation.shape != (len(x),) or validation.all() or not validation.any():
        raise ValueError("validation must mark some, not all, of the rows of x")
    mean, std = scaler_of(~validation)  # fit rows only
    x_fit, y_fit = inputs_of(~validation, mean, std), y[~validation]  # (n_fit, frames, 13)
    x_validation, y_validation = inputs_of(validation, mean, std), y[validation]
    model, history, early_stopping = fit_model(
        config, model_id, seed, x_fit, y_fit, (x_validation, y_validation), callbacks, verbose
    )
    epochs = len(history["loss"])
    best_epoch = early_stopping.best_epoch + 1 if early_stopping is not None else epochs
    refit_history = None
    if train.refit:
        # Early stopping only chose the epoch count; now every row trains a fresh model for that
        # long, with the learning rates the first run used, and a scaler of them all.
        # (ReduceLROnPlateau logs the rate of each epoch; without it the rate never changed.)
        logged = history.get("learning_rate", [train.learning_rate] * best_epoch)
        learning_rates = [float(rate) for rate in logged[:best_epoch]]
        mean, std = scaler_of(every)
        # A cosine schedule is not replayed: the refit decays over its own best_epoch epochs.
        replay = (
            []
            if train.lr_schedule == "cosine"
            else [keras.callbacks.LearningRateScheduler(lambda epoch: learning_rates[epoch])]
        )
        model, refit_history, _ = fit_model(
            config,
            model_id,
            seed,
            inputs_of(every, mean, std),
            y,
            None,
            [*callbacks, *replay],
            verbose,
            epochs=best_epoch,
        )
    return TrainResult(model, mean, std, history, refit_history, epochs, best_epoch)
