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

import keras
import numpy as np
from keras import ops
from sklearn.metrics import balanced_accuracy_score

from cremad.config import EMOTIONS, ExperimentConfig
from cremad.model_names import ModelSpec
from cremad.models import build_model
from cremad.scaling import class_weights, fit_scaler, normalize_utterances, prepare_inputs


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


# Hand-written: Keras' metrics accumulate per batch, and UA is a recall per class over the whole set.
class UnweightedAccuracy(keras.callbacks.Callback):
    """Logs `val_ua`, the unweighted accuracy (mean recall over the classes present) of the
    model on (x, y) after every epoch."""

    def __init__(self, x, y):
        super().__init__()
        self.x, self.y = x, y

    def on_epoch_end(self, epoch, logs=None):
        predicted = self.model.predict(self.x, batch_size=256, verbose=0).argmax(axis=1)
        if logs is not None:
            with warnings.catch_warnings():  # predicting a class the watched actor lacks is normal
                warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
                logs["val_ua"] = float(balanced_accuracy_score(self.y, predicted))


# Hand-written: keras.layers.GaussianNoise would noise the padding frames too.
@keras.saving.register_keras_serializable(package="cremad")
class SpeechFrameNoise(keras.layers.Layer):
    """In training only, adds N(0, stddev) noise to every frame that is not pure padding
    (padding frames are all zeros after prepare_inputs' "zero" padding value and stay so); at
    inference it passes its input through."""

    def __init__(self, stddev: float, seed: int, name: str = "speech_frame_noise", **kwargs):
        super().__init__(name=name, **kwargs)
        self.stddev, self.seed = stddev, seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, x, training=False):
        if not training:
            return x
        own = ops.cast(ops.any(ops.not_equal(x, 0.0), axis=-1, keepdims=True), x.dtype)  # (B, frames, 1)
        return x + own * keras.random.normal(ops.shape(x), stddev=self.stddev, seed=self.seed_generator)

    def get_config(self):
        return {**super().get_config(), "stddev": self.stddev, "seed": self.seed}


# Hand-written: Keras' SparseCategoricalCrossentropy has no label smoothing.
@keras.saving.register_keras_serializable(package="cremad")
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Cross-entropy of integer labels against targets smoothed by `label_smoothing`."""

    def __init__(self, label_smoothing: float, n_classes: int, name: str = "smoothed_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing, self.n_classes = label_smoothing, n_classes

    def call(self, y_true, y_pred):
        one_hot = ops.one_hot(ops.cast(ops.reshape(y_true, (-1,)), "int32"), self.n_classes)  # (B, classes)
        return keras.losses.categorical_crossentropy(one_hot, y_pred, label_smoothing=self.label_smoothing)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing, "n_classes": self.n_classes}


def loss_of(train) -> str | keras.losses.Loss:
    """The loss config.train asks for: the paper's sparse cross-entropy, or it label-smoothed."""
    if train.label_smoothing > 0:
        return SmoothedSparseCrossentropy(train.label_smoothing, len(EMOTIONS))
    return "sparse_categorical_crossentropy"


# Hand-written: SpecAugment's masks know no padding, and a mask there would only waste itself.
@keras.saving.register_keras_serializable(package="cremad")
class SpeechFrameMasking(keras.layers.Layer):
    """In training only, SpecAugment-style masks inside each clip's own frames (the frames that
    are not all zeros, pure padding after prepare_inputs' "zero" padding value): `time_masks`
    runs of 0 to `time_mask_frames` consecutive speech frames and `frequency_masks` runs of 0 to
    `frequency_mask_columns` consecutive columns, set to 0 (the standardized mean), widths and
    places drawn afresh for every clip of every batch. Padding stays as it is; at inference it
    passes its input through."""

    def __init__(
        self,
        time_masks: int,
        time_mask_frames: int,
        frequency_masks: int,
        frequency_mask_columns: int,
        seed: int,
        name: str = "speech_frame_masking",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        self.time_masks, self.time_mask_frames = time_masks, time_mask_frames
        self.frequency_masks, self.frequency_mask_columns = frequency_masks, frequency_mask_columns
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def _run(self, batch, widest: int, room):
        """(start, width) per clip, (B, 1) each: width uniform in 0..widest, at most `room`
        (B, 1), start uniform in 0..room - width."""
        width = keras.random.randint((batch, 1), 0, widest + 1, seed=self.seed_generator)
        width = ops.minimum(ops.cast(width, "float32"), room)
        start = ops.floor(keras.random.uniform((batch, 1), seed=self.seed_generator) * (room - width + 1))
        return start, width

    def call(self, x, training=False):
        if not training:
            return x
        batch, n_columns = ops.shape(x)[0], x.shape[-1]
        own = ops.cast(ops.any(ops.not_equal(x, 0.0), axis=-1), "float32")  # (B, frames)
        place = ops.cumsum(own, axis=1) - 1.0  # (B, frames) each own frame's place among its clip's own
        keep_frames = ops.ones_like(own)
        for _ in range(self.time_masks):
            start, width = self._run(batch, self.time_mask_frames, ops.sum(own, axis=1, keepdims=True))
            inside = (place >= start) & (place < start + width)  # (B, frames)
            keep_frames = keep_frames * (1.0 - own * ops.cast(inside, "float32"))
        columns = ops.cast(ops.arange(n_columns), "float32")[None, :]  # (1, columns)
        keep_columns = ops.ones((batch, n_columns))
        for _ in range(self.frequency_masks):
            start, width = self._run(
                batch, self.frequency_mask_columns, ops.full((batch, 1), float(n_columns))
            )
            inside = (columns >= start) & (columns < start + width)  # (B, columns)
            keep_columns = keep_columns * (1.0 - ops.cast(inside, "float32"))
        keep = (
            keep_frames[:, :, None] * keep_columns[:, None, :]
        )  # (B, frames, columns); padding is 0 either way
        return x * ops.cast(keep, x.dtype)

    def get_config(self):
        return {
            **super().get_config(),
            "time_masks": self.time_masks,
            "time_mask_frames": self.time_mask_frames,
            "frequency_masks": self.frequency_masks,
            "frequency_mask_columns": self.frequency_mask_columns,
            "seed": self.seed,
        }


def fit_model(
    config: ExperimentConfig,
    model_id: int | ModelSpec,
    seed: int,
    x,
    y,
    validation,
    callbacks,
    verbose: int = 0,
    epochs: int | None = None,
):
    """Build, compile (optimizer, learning rate and loss from config.train, by default sparse
    categorical cross-entropy) and fit model `model_id` (an id, or a `ModelSpec` record) from seed
    `seed` on arrays already standardized.
    With `validation` data and train.early_stopping, early stopping (best weights restored) and
    the plateau schedule watch its loss; without train.early_stopping the validation data is
    only watched: its loss, accuracy and unweighted accuracy (`val_ua`) are logged per epoch.
    Returns the model, its history (per-epoch logs) and the EarlyStopping callback (None
    when nothing stopped early)."""

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
    fitted = model  # what model.fit runs: the paper's model, or it behind training-only layers
    training_only = {}
    if train.input_noise > 0:
        training_only["noise"] = SpeechFrameNoise(train.input_noise, seed)
    if train.masks:  # after the noise: a masked value is 0, the standardized mean
        training_only["masks"] = SpeechFrameMasking(
            train.time_masks,
            train.time_mask_frames,
            train.frequency_masks,
            train.frequency_mask_columns,
            seed + 1,  # its own random stream, not the noise's
        )
    if training_only:
        fitted = keras.Sequential(
            [keras.Input(shape=x.shape[1:]), *training_only.values(), model],
            name=f"{model.name}_with_{'_'.join(training_only)}",
        )
    fitted.compile(optimizer=optimizer, loss=loss_of(train), metrics=["accuracy"])
    early_stopping = None
    own = []  # before the caller's callbacks, so that a CSVLogger among those sees every log
    if train.ema_momentum > 0 and validation is not None:
        # Validate, log and early-stop on the averaged weights, the ones fit leaves in the model:
        # this swaps them in at every epoch's end, before the other callbacks run.
        own.append(keras.callbacks.SwapEMAWeights(swap_on_epoch=True))
    if validation is not None and not train.early_stopping:
        own.append(UnweightedAccuracy(*validation))
    elif validation is not None:
        early_stopping = keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=train.patience, restore_best_weights=True
        )
        own.append(early_stopping)
        if train.reduce_lr_patience > 0:
            own.append(
                keras.callbacks.ReduceLROnPlateau(
                    monitor="val_loss", factor=0.5, patience=train.reduce_lr_patience
                )
            )
    callbacks = [*own, *callbacks]
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
    refit_callbacks=None,
    copies=None,
) -> TrainResult:
    """Train paper model `model_id` on raw MFCCs `x` (n_clips, n_frames, n_mfcc) with labels `y`
    (EMOTIONS indices).

    `validation` is a boolean mask over the rows of `x`: those rows only watch training (early
    stopping and the learning-rate schedule, or with train.early_stopping off the logged
    `val_*` curves); the model fits the others, and the standardization comes from them. With
    config.train.refit, a fresh model (same seed) then trains on every row, in the given order,
    for the best epoch count, replaying the early-stopped fit's learning rates, with statistics of every
    row. Without a mask the model trains config.train.max_epochs on every row. `frame_mask`
    (n_clips, n_frames) marks each clip's own frames; train.standardize_frames "speech",
    train.padding_value "zero" and train.utterance_normalization need it. The scaler returned
    describes the per-clip-normalized MFCCs (prepare_inputs redoes that step). `callbacks` are
    extra Keras callbacks (e.g. a timer, a CSVLogger); `refit_callbacks` replace them for the
    refit (default: the same). `copies` (cremad.augment.TrainingCopies, needed when
    train.speed_factors or vtlp_factors are set) are augmented copies of rows of `x`: each trains
    beside the rows that fit, never when its row is a validation one, and never enters the
    standardization statistics, which describe the original clips only."""

    train = config.train
    y = np.asarray(y)
    if train.needs_frame_mask and frame_mask is None:
        raise ValueError(
            "train.standardize_frames 'speech' / padding_value 'zero' / utterance_normalization "
            "need frame_mask"
        )
    if frame_mask is not None and frame_mask.shape != x.shape[:2]:
        raise ValueError(f"frame_mask has shape {frame_mask.shape}, expected {x.shape[:2]}")
    if train.voices and copies is None:
        raise ValueError(
            "train.speed_factors / vtlp_factors need the copies (cremad.augment.augmented_inputs)"
        )
    scaler_mask = frame_mask if train.standardize_frames == "speech" else None
    x = normalize_utterances(x, frame_mask, train.utterance_normalization)  # per clip, before the scaler

    def scaler_of(rows):  # statistics of these rows only
        return fit_scaler(x[rows], train.standardize, None if scaler_mask is None else scaler_mask[rows])

    def inputs_of(rows, mean, std):
        return prepare_inputs(
            x[rows], mean, std, train.padding_value, None if frame_mask is None else frame_mask[rows]
        )

    def fit_arrays(rows, mean, std):  # these rows, then their copies: a watched row's copies never train
        if copies is None:
            return inputs_of(rows, mean, std), y[rows]
        kept = rows[copies.source]
        copy_mask = None if copies.frame_mask is None else copies.frame_mask[kept]
        x_copies = normalize_utterances(copies.x[kept], copy_mask, train.utterance_normalization)
        x_copies = prepare_inputs(x_copies, mean, std, train.padding_value, copy_mask)
        return np.concatenate([inputs_of(rows, mean, std), x_copies]), np.concatenate(
            [y[rows], copies.y[kept]]
        )

    every = np.ones(len(x), dtype=bool)
    if validation is None:
        mean, std = scaler_of(every)
        model, history, _ = fit_model(
            config, model_id, seed, *fit_arrays(every, mean, std), None, callbacks, verbose
        )
        epochs = len(history["loss"])
        return TrainResult(model, mean, std, history, None, epochs, epochs)

    validation = np.asarray(validation, dtype=bool)
    if validation.shape != (len(x),) or validation.all() or not validation.any():
        raise ValueError("validation must mark some, not all, of the rows of x")
    mean, std = scaler_of(~validation)  # fit rows only
    x_fit, y_fit = fit_arrays(~validation, mean, std)  # (n_fit + their copies, frames, 13)
    x_validation, y_validation = inputs_of(validation, mean, std), y[validation]
    model, history, early_stopping = fit_model(
        config, model_id, seed, x_fit, y_fit, (x_validation, y_validation), callbacks, verbose
    )
    epochs = len(history["loss"])
    best_epoch = early_stopping.best_epoch + 1 if early_stopping is not None else epochs
    refit_history = None
    if train.refit:
        # Early stopping only chose the epoch count; now every row trains a fresh model for that
        # long, with the learning rates the early-stopped fit used, and a scaler of them all.
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
            *fit_arrays(every, mean, std),
            None,
            [*replay, *(callbacks if refit_callbacks is None else refit_callbacks)],
            verbose,
            epochs=best_epoch,
        )
    return TrainResult(model, mean, std, history, refit_history, epochs, best_epoch)
