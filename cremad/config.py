"""Frozen configuration: the paper's values as defaults, every silent choice explained.

Three dataclasses cover the pipeline: `FeatureConfig` (section II-B), `ModelConfig`
(sections II-D to II-G) and `TrainConfig` (section II-C plus the training recipe the paper
does not give). `ExperimentConfig` bundles them; `experiments/*.toml` override fields by name.
Every field is checked when a config is made: unknown keys, wrong types and values outside the
field's `LIMITS` raise `ValueError` naming the key ("train.max_epochs must be >= 1, got -3"), and
`load_experiment` puts the file's path in front.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from cremad.model_names import MODEL_IDS, model_name

EMOTIONS = ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")
EMOTION_NAMES = {
    "ANG": "Anger",
    "DIS": "Disgust",
    "FEA": "Fear",
    "HAP": "Happy",
    "NEU": "Neutral",
    "SAD": "Sad",
}
SAMPLE_RATE = 16_000  # CREMA-D is recorded at 16 kHz
FRAME_FEATURE_SETS = ("mfcc", "mfcc-deltas", "prosody", "rich")  # see cremad/frames.py
# experiments/ sits beside the package in a checkout; setup.cfg maps it into the wheel as
# cremad/experiments, so an installed cremad (pip install ., a wheel) finds it without one.
_PACKAGE_DIR = Path(__file__).resolve().parent
EXPERIMENTS_DIR = next(
    (
        folder
        for folder in (_PACKAGE_DIR / "experiments", _PACKAGE_DIR.parent / "experiments")
        if folder.is_dir()
    ),
    _PACKAGE_DIR.parent / "experiments",
)

# The names keras.optimizers.get builds from train.optimizer and train.learning_rate alone.
OPTIMIZERS = ("adam", "adamw", "nadam", "adamax", "rmsprop", "sgd", "adagrad", "adadelta", "lion")


@dataclasses.dataclass(frozen=True)
class Limit:
    """What a setting's value must be, checked when a config is made (`check_limits`)."""

    expected: str  # completes "train.max_epochs must be ...": ">= 1"
    accepts: Callable[[Any], bool]
    refused: Any  # a value of the right type it refuses (the tests try it)


def at_least(low: float) -> Limit:
    return Limit(f">= {low}", lambda value: value >= low, low - 1)


def above(low: float) -> Limit:
    return Limit(f"> {low}", lambda value: value > low, low)


def fraction(low_open: bool = False) -> Limit:
    """A share below 1: in [0, 1), or (0, 1) with `low_open`."""
    if low_open:
        return Limit("in (0, 1)", lambda value: 0 < value < 1, 1.0)
    return Limit("in [0, 1)", lambda value: 0 <= value < 1, 1.0)


def one_of(*choices: str) -> Limit:
    return Limit(f"one of {choices}", lambda value: value in choices, "none of these")


def factors() -> Limit:
    """Augmentation factors: distinct, positive, none of them 1 (the clip itself trains already)."""
    return Limit(
        "distinct positive factors other than 1 (the clip itself trains already)",
        lambda value: all(factor > 0 and factor != 1.0 for factor in value) and len(set(value)) == len(value),
        (1.0,),
    )


def check_limits(config: Any, section: str) -> None:
    """Raise ValueError "<section>.<key> must be <limit>, got <value>" for the first field of the
    dataclass `config` outside its class's LIMITS (None passes: the type allows it)."""
    for key, limit in type(config).LIMITS.items():
        value = getattr(config, key)
        if value is not None and not limit.accepts(value):
            raise ValueError(f"{section}.{key} must be {limit.expected}, got {_shown(value)}")


def _shown(value: Any) -> str:
    """A value as an experiment file writes it: lists for tuples, true/false for booleans."""
    return json.dumps(list(value) if isinstance(value, tuple) else value)


@dataclasses.dataclass(frozen=True)
class FeatureConfig:
    """MFCC extraction, section II-B: 13 MFCCs, 20 ms window, 10 ms hop, zero-padded clips."""

    sample_rate: int = SAMPLE_RATE
    n_mfcc: int = 13  # paper: "the first 13 MFCCs"
    win_length: int = 320  # paper: 20 ms at 16 kHz
    hop_length: int = 160  # paper: 10 ms frame step
    # The paper is silent on the rest. n_fft is the next power of two above the 20 ms window
    # (the window itself stays 320 samples, zero-padded inside the FFT).
    n_fft: int = 512
    # 40 mel bands is the usual filterbank for 16 kHz speech (HTK/Kaldi recipes); librosa's
    # default of 128 leaves empty bands at n_fft=512.
    n_mels: int = 40
    fmin: float = 0.0
    fmax: float = 8000.0  # Nyquist at 16 kHz
    # Centred frames (frame t is centred on sample t * hop, zero-padded at the ends): frames map
    # to samples by a plain multiply for Fig. 2, and a 5.005 s clip gives 1 + 80080 // 160 = 501
    # frames.
    center: bool = True
    # Target length in samples. None is the paper's rule: pad every clip to the longest clip.
    pad_to: int | None = None
    # Which end of a clip the zeros go: the paper says only "padded with zeros till maximum audio
    # clip length". "start" prepends them, as Keras' pad_sequences does by default, so a recurrent
    # model's last state follows the speech; with "end" model 3 stayed at chance on padded speech
    # in validation (experiments/README.md#padding-and-epochs).
    pad_side: str = "start"
    # Whether a run of digital silence at least one window long at either end of a clip (zeros the
    # corpus itself appended, as some Emo-DB copies do to cut clips to 2.0 s) is cut off before the
    # clip is padded, so that it becomes padding like ours. Off, as the paper pads clips as they
    # are, and cutting tied in validation (experiments/README.md#edge-zeros).
    trim_digital_silence: bool = False
    # Floor of the log-mel power in dB (re 1.0): digital silence, i.e. the zero padding, maps to
    # this value in every band. -100 dB (amin 1e-10) lies far below any recorded speech.
    log_floor_db: float = -100.0
    # A clip whose peak absolute amplitude stays below this (-60 dBFS) holds no speech; CREMA-D's
    # 1076_MTI_SAD_XX.wav is such a clip. Silent clips are excluded unless keep_silent is set.
    silence_peak: float = 1e-3
    # Beyond the paper (cremad/frames.py): the per-frame columns the models read. "mfcc" is the
    # paper's 13; "mfcc-deltas", "prosody" and "rich" add deltas, energy, pitch and spectral shape.
    frame_features: str = "mfcc"

    LIMITS: ClassVar[dict[str, Limit]] = {
        "sample_rate": at_least(1),
        "n_mfcc": at_least(1),
        "win_length": at_least(1),
        "hop_length": at_least(1),
        "n_fft": at_least(1),
        "n_mels": at_least(1),
        "fmin": at_least(0.0),
        "fmax": above(0.0),
        "pad_to": at_least(1),
        "pad_side": one_of("start", "end"),
        "log_floor_db": Limit("< 0", lambda value: value < 0, 0.0),  # dB re 1.0: full scale is 0
        "silence_peak": fraction(),
        "frame_features": one_of(*FRAME_FEATURE_SETS),
    }

    def __post_init__(self):
        check_limits(self, "features")
        for key, bound, value in (
            ("n_mfcc", "features.n_mels", self.n_mels),  # the DCT keeps at most one per band
            ("win_length", "features.n_fft", self.n_fft),
            ("fmax", "half of features.sample_rate", self.sample_rate / 2),
        ):
            if getattr(self, key) > value:
                raise ValueError(f"features.{key} must be <= {bound} ({value}), got {getattr(self, key)}")
        if self.fmin >= self.fmax:
            raise ValueError(f"features.fmin must be < features.fmax ({self.fmax}), got {self.fmin}")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The four models of sections II-D to II-G. The paper gives no sizes; the block follows the
    Keras attention recipe its Fig. 1 reproduces (RepeatVector, Concatenate, Dense(tanh),
    Dense(relu), softmax over time, Dot) with its 10-unit attention layer. The LSTM sizes are
    twice that recipe's 32 / 64, chosen by validation (below)."""

    # Twice the Keras recipe's 32 / 64: higher validation UA over three seeds, at about twice the
    # CPU time (experiments/README.md#width-dropout-weight-averaging).
    pre_units: int = 64  # pre-LSTM units per direction (BiLSTM outputs 128)
    post_units: int = 128  # post-LSTM units, the s<t> of the attention block
    attention_units: int = 10  # width of the first attention Dense (tanh)
    # Paper: "Dropout is used"; the rate is not given. 0.3 is a common middle; 0.5 lost in
    # validation (experiments/README.md#width-dropout-weight-averaging).
    dropout_rate: float = 0.3
    decoder_steps: int = 1  # one label per utterance, one attention curve per clip (Fig. 2)

    LIMITS: ClassVar[dict[str, Limit]] = {
        "pre_units": at_least(1),
        "post_units": at_least(1),
        "attention_units": at_least(1),
        "dropout_rate": fraction(),
        "decoder_steps": at_least(1),
    }

    def __post_init__(self):
        check_limits(self, "model")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Leave-one-subject-out training, section II-C, and the recipe the paper leaves out."""

    optimizer: str = "adam"  # the usual default for LSTMs in Keras; the paper names none
    # Adam's default: twice it tied in validation and half it lost (experiments/README.md#learning-rate).
    learning_rate: float = 1e-3
    # The learning rate over the epochs fit runs (the paper is silent): "constant", or "cosine"
    # (Keras' CosineDecay: lowered after every batch, from learning_rate to 0 after the last one).
    # With early stopping the epoch count is not known in advance, so "cosine" needs it off.
    # Constant: cosine scored lower in validation on both corpora
    # (experiments/README.md#learning-rate-schedule).
    lr_schedule: str = "constant"
    # Keras' default; 16 ended no higher in validation (experiments/README.md#class-weights-and-batch-size).
    batch_size: int = 32
    # The epoch count every fold trains without early stopping (an upper bound with it): the
    # plateau of the validation curves inside the training actors
    # (experiments/README.md#padding-and-epochs).
    max_epochs: int = 30
    patience: int = 8  # with early_stopping: epochs without validation improvement before stopping
    # Early stopping watches a validation set made of whole *training* actors (never the test
    # actor): this share of them, at least one.
    validation_fraction: float = 0.1
    # Halve the learning rate when validation loss stalls for this many epochs (0 = off).
    reduce_lr_patience: int = 4
    # Per-coefficient z-scoring with statistics of the training actors only.
    standardize: bool = True
    # Which frames the z-scoring statistics describe: "speech" (each clip's own frames) or "all"
    # (padding included). With half of CREMA-D's frames padding at the -100 dB floor, "all" spends
    # c0's whole range on speech-vs-padding and squeezes the speech into a sliver of it.
    standardize_frames: str = "speech"
    # What the pure-padding frames hold after z-scoring: "zero" (0 in every coefficient, i.e.
    # Keras' pad_sequences on standardized MFCCs, a neutral input) or "floor" (the log floor,
    # standardized like speech: about -10 sd in c0 with speech statistics).
    padding_value: str = "zero"
    # False: no validation actors; every training actor trains for max_epochs. True: early
    # stopping on validation_fraction of the training actors, which on Emo-DB/CASIA means 1 of 9
    # or 3 actors: a noisy signal that stopped most folds on the first plateau
    # (experiments/README.md#padding-and-epochs).
    early_stopping: bool = False
    # Beyond the paper (off in paper.toml): z-score each actor's clips with that actor's own
    # statistics first, the test actor's from its unlabelled audio only.
    speaker_normalization: bool = False
    # Per-clip normalization of the MFCCs over the clip's own frames, before the z-scoring above
    # (cepstral mean / mean-and-variance normalization, common in speech front ends; the paper is
    # silent): "none", "mean" (subtract each clip's mean per coefficient) or "meanvar" (also divide
    # by its std). It needs no speaker labels, so `cremad predict` applies it to a new recording.
    # Off: it removes each clip's level and tilt, which carry emotion, and lost in validation
    # (experiments/README.md#per-clip-normalization-and-input-noise).
    utterance_normalization: str = "none"
    # Data augmentation while fitting (the paper is silent): Gaussian noise of this standard
    # deviation added to every standardized speech frame of every training batch, drawn afresh
    # each time (padding frames stay 0; with padding_value "floor" they get noise too). The
    # saved model is the paper's, without it. Off: its gain in validation was under the bar set
    # beforehand (experiments/README.md#per-clip-normalization-and-input-noise).
    input_noise: float = 0.0
    # Polyak averaging (the paper is silent): with a momentum m > 0 the optimizer keeps an
    # exponential moving average of the weights (Keras' use_ema, new = m * old + (1 - m) * w after
    # every batch), and the model that is tested and saved holds that average; validation curves
    # score it too. 0 = off, the last batch's weights: averaging tied in validation
    # (experiments/README.md#width-dropout-weight-averaging).
    ema_momentum: float = 0.0
    # After early stopping has chosen the epoch count on the validation actors, retrain a fresh
    # model on all training actors (validation ones included) for that many epochs, replaying
    # the learning-rate schedule. Off = the model early stopping restored is the final one.
    refit: bool = False
    # "balanced" weights classes inversely to their training counts (CREMA-D has fewer NEU);
    # "none" trains unweighted, which cost model 3 in validation on imbalanced Emo-DB
    # (experiments/README.md#class-weights-and-batch-size).
    class_weight: str = "balanced"
    # Label smoothing (the paper is silent): the cross-entropy's target puts this much of its
    # mass evenly on all classes. 0 = off, the paper's plain cross-entropy; untested in validation.
    label_smoothing: float = 0.0
    seed: int = 0
    # Beyond the paper, off by default: new "voices" for the few training speakers
    # (cremad/augment.py). Each speed factor gives every fit clip one more copy resampled to play
    # that many times faster (tempo and pitch, Ko et al. 2015); each VTLP factor one more copy whose
    # spectrum's frequencies are scaled by it (Jaitly & Hinton 2013). Copies of validation,
    # selection and test actors never train.
    speed_factors: tuple[float, ...] = ()
    vtlp_factors: tuple[float, ...] = ()
    # SpecAugment-style masks on every training batch (cremad.training.SpeechFrameMasking), inside
    # each clip's own frames only: this many runs of up to time_mask_frames frames and this many
    # runs of up to frequency_mask_columns consecutive columns, set to 0. 0 masks = off.
    time_masks: int = 0
    time_mask_frames: int = 0
    frequency_masks: int = 0
    frequency_mask_columns: int = 0

    LIMITS: ClassVar[dict[str, Limit]] = {
        "optimizer": one_of(*OPTIMIZERS),
        "learning_rate": above(0.0),
        "lr_schedule": one_of("constant", "cosine"),
        "batch_size": at_least(1),
        "max_epochs": at_least(1),
        "patience": at_least(0),
        "validation_fraction": fraction(low_open=True),
        "reduce_lr_patience": at_least(0),
        "standardize_frames": one_of("speech", "all"),
        "padding_value": one_of("zero", "floor"),
        "utterance_normalization": one_of("none", "mean", "meanvar"),
        "input_noise": at_least(0.0),
        "ema_momentum": fraction(),
        "class_weight": one_of("balanced", "none"),
        "label_smoothing": fraction(),
        "seed": at_least(0),
        "speed_factors": factors(),
        "vtlp_factors": factors(),
        "time_masks": at_least(0),
        "time_mask_frames": at_least(0),
        "frequency_masks": at_least(0),
        "frequency_mask_columns": at_least(0),
    }

    def __post_init__(self):
        check_limits(self, "train")
        if self.lr_schedule != "constant" and self.early_stopping:
            raise ValueError(
                "train.lr_schedule 'cosine' decays over a known epoch count: it needs "
                "train.early_stopping = false"
            )
        for count, width in (
            ("time_masks", "time_mask_frames"),
            ("frequency_masks", "frequency_mask_columns"),
        ):
            if getattr(self, count) > 0 and getattr(self, width) == 0:
                raise ValueError(f"train.{count} > 0 needs train.{width} > 0")
        if self.masks and self.padding_value != "zero":
            # The masking layer tells padding from speech by its zeros.
            raise ValueError("train.time_masks / frequency_masks need train.padding_value = 'zero'")

    @property
    def masks(self) -> bool:
        """Whether training masks time or frequency runs of the speech frames."""
        return self.time_masks > 0 or self.frequency_masks > 0

    @property
    def voices(self) -> tuple[tuple[str, float], ...]:
        """The augmented copies each fit clip gets: ("speed", factor) and ("vtlp", factor) pairs."""
        return tuple(("speed", factor) for factor in self.speed_factors) + tuple(
            ("vtlp", factor) for factor in self.vtlp_factors
        )

    @property
    def needs_frame_mask(self) -> bool:
        """Whether training needs to know which frames are padding."""
        return (
            self.standardize_frames == "speech"
            or self.padding_value == "zero"
            or self.utterance_normalization != "none"
        )


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """Everything that defines a run; written into every run folder."""

    name: str = "paper"
    features: FeatureConfig = dataclasses.field(default_factory=FeatureConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        # Through JSON: tuples (the augmentation factors) become lists, as config.json reads back.
        return json.loads(json.dumps(dataclasses.asdict(self)))


_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


def _check_type(key: str, value: Any, annotation: Any) -> Any:
    """Return `value` coerced to `annotation` (int -> float allowed), else raise ValueError
    "<key> must be <type>, got <value>"."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = [option for option in typing.get_args(annotation) if option is not type(None)]
        if value is None and len(options) < len(typing.get_args(annotation)):
            return None
        for option in options:
            try:
                return _check_type(key, value, option)
            except ValueError:
                pass
        expected = " or ".join(_TYPE_NAMES.get(option, str(option)) for option in options)
        raise ValueError(f"{key} must be {expected}, got {_shown(value)}")
    if origin is tuple:  # tuple[float, ...]: a TOML or JSON list, stored as a tuple (hashable)
        (item, _ellipsis) = typing.get_args(annotation)
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{key} must be a list, got {_shown(value)}")
        return tuple(_check_type(f"{key}[{index}]", element, item) for index, element in enumerate(value))
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation in _TYPE_NAMES:
        if not isinstance(value, annotation) or (isinstance(value, bool) and annotation is not bool):
            raise ValueError(f"{key} must be {_TYPE_NAMES[annotation]}, got {_shown(value)}")
        return value
    raise ValueError(f"{key}: unsupported type {annotation}")


def replace(config: Any, overrides: dict[str, Any], prefix: str = "") -> Any:
    """Return a copy of the dataclass `config` with `overrides` applied, nested dicts for
    nested dataclasses. Unknown keys or wrong types raise ValueError naming the key."""
    fields = {field.name: field for field in dataclasses.fields(config)}
    types_of = typing.get_type_hints(type(config))  # the annotations are strings (__future__)
    changes = {}
    for key, value in overrides.items():
        name = f"{prefix}{key}"
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise ValueError(f"unknown config key {name!r} (known: {known})")
        current = getattr(config, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ValueError(f"{name} must be a table of settings, got {_shown(value)}")
            changes[key] = replace(current, value, prefix=f"{name}.")
        else:
            changes[key] = _check_type(name, value, types_of[key])
    return dataclasses.replace(config, **changes)


def from_dict(data: dict[str, Any]) -> ExperimentConfig:
    """Rebuild an ExperimentConfig from `to_dict()` output (e.g. a run folder's config.json)."""
    return replace(ExperimentConfig(), data)


def list_experiments(directory: Path = EXPERIMENTS_DIR) -> list[str]:
    return sorted(path.stem for path in Path(directory).glob("*.toml"))


def experiment_path(name: str, directory: Path = EXPERIMENTS_DIR) -> Path:
    """`experiments/<name>.toml` for a name, or `name` itself when it is a path to a TOML file
    (it ends in .toml or names a folder); ValueError if there is no such file."""
    if name.endswith(".toml") or "/" in name or "\\" in name:
        if not Path(name).is_file():
            raise ValueError(f"experiment file {name} does not exist")
        return Path(name)
    path = Path(directory) / f"{name}.toml"
    if not path.is_file():
        known = ", ".join(list_experiments(directory)) or "none"
        raise ValueError(
            f"unknown experiment {name!r}: no {path} (known: {known}; or give a path to a TOML file)"
        )
    return path


def load_experiment(
    name: str = "paper", model_id: int | None = None, directory: Path = EXPERIMENTS_DIR
) -> ExperimentConfig:
    """Load `experiments/<name>.toml` (or the TOML file `name`, named after its stem): top-level
    [features]/[model]/[train] tables apply to every model, a [model<k>] table (same sub-tables)
    applies on top for model k."""
    path = experiment_path(name, directory)
    try:
        return _read_experiment(path, model_id)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None


def _read_experiment(path: Path, model_id: int | None) -> ExperimentConfig:
    """`load_experiment` of the file at `path`; its errors name the key, the caller the file."""
    with open(path, "rb") as handle:
        data = tomllib.load(handle)  # TOMLDecodeError is a ValueError
    per_model = {key: data.pop(key) for key in list(data) if key.startswith("model") and key != "model"}
    for key in per_model:
        if key not in {model_name(model_id) for model_id in MODEL_IDS}:
            raise ValueError(
                f"unknown table [{key}] (per-model tables are "
                f"[{model_name(MODEL_IDS[0])}]..[{model_name(MODEL_IDS[-1])}])"
            )
    data.pop("description", None)
    config = replace(ExperimentConfig(name=path.stem), data)
    table = model_name(model_id) if model_id is not None else None
    if table in per_model:
        try:
            config = replace(config, per_model[table])
        except ValueError as error:
            raise ValueError(f"[{table}] {error}") from None
    return config
