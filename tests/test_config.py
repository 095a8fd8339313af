"""Every setting of an experiment file is checked when the file is read: a wrong type or a value
outside the field's limits is refused with the file's path and the key, before anything runs."""

from __future__ import annotations

import dataclasses
import json
import re
import typing

import pytest

from cremad import cli
from cremad.config import ExperimentConfig, load_experiment

SECTIONS = {field.name: field.type for field in dataclasses.fields(ExperimentConfig) if field.name != "name"}
# A value of the wrong type for each annotation, as a TOML file would hold it.
WRONG_TYPE = {int: "3", float: "x", str: 3, bool: "yes", tuple: "1.5"}


def every_field():
    """(section, key, annotation) for every field of every config section."""
    for section in SECTIONS:
        section_class = type(getattr(ExperimentConfig(), section))
        hints = typing.get_type_hints(section_class)
        for field in dataclasses.fields(section_class):
            yield section, field.name, hints[field.name]


def plain_type(annotation):
    """int for `int | None`, tuple for `tuple[float, ...]`, the type itself otherwise."""
    options = [option for option in typing.get_args(annotation) if option is not type(None)]
    if typing.get_origin(annotation) is tuple or annotation is tuple:
        return tuple
    return options[0] if options and typing.get_origin(annotation) is not tuple else annotation


def write_recipe(tmp_path, section: str, key: str, value, table: str | None = None):
    path = tmp_path / "mine.toml"
    path.write_text(f"[{table or section}]\n{key} = {json.dumps(value)}\n")
    return path


FIELDS = list(every_field())


def test_the_walk_covers_every_section():
    assert set(SECTIONS) == {"features", "model", "train"}
    assert {section for section, _, _ in FIELDS} == set(SECTIONS)


@pytest.mark.parametrize("section, key, annotation", FIELDS, ids=[f"{s}.{k}" for s, k, _ in FIELDS])
def test_a_value_of_the_wrong_type_names_the_file_and_the_key(section, key, annotation, tmp_path):
    path = write_recipe(tmp_path, section, key, WRONG_TYPE[plain_type(annotation)])
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}: {section}\.{key} must be .+, got "):
        load_experiment(str(path))


@pytest.mark.parametrize("section, key, annotation", FIELDS, ids=[f"{s}.{k}" for s, k, _ in FIELDS])
def test_a_value_out_of_range_names_the_file_and_the_key(section, key, annotation, tmp_path):
    limits = type(getattr(ExperimentConfig(), section)).LIMITS
    if plain_type(annotation) is bool:
        assert key not in limits  # true and false are both settings
        return
    assert key in limits, f"{section}.{key} has no limit"
    path = write_recipe(tmp_path, section, key, limits[key].refused)
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}: {section}\.{key} must be .+, got "):
        load_experiment(str(path))


@pytest.mark.parametrize(
    "section, key, value, expected",
    [
        ("train", "max_epochs", -3, "train.max_epochs must be >= 1, got -3"),
        ("train", "batch_size", 0, "train.batch_size must be >= 1, got 0"),
        ("train", "learning_rate", -1.0, "train.learning_rate must be > 0.0, got -1.0"),
        ("features", "n_mfcc", 0, "features.n_mfcc must be >= 1, got 0"),
        ("model", "pre_units", 0, "model.pre_units must be >= 1, got 0"),
        ("features", "n_mfcc", 41, "features.n_mfcc must be <= features.n_mels (40), got 41"),
        ("features", "fmax", 9000.0, "features.fmax must be <= half of features.sample_rate (8000.0)"),
    ],
)
def test_values_that_used_to_pass(section, key, value, expected, tmp_path):
    path = write_recipe(tmp_path, section, key, value)
    with pytest.raises(ValueError, match=re.escape(f"{path}: {expected}")):
        load_experiment(str(path))


def test_a_per_model_table_is_checked_too(tmp_path):
    path = write_recipe(tmp_path, "train", "max_epochs", 0, table="model2.train")
    load_experiment(str(path), model_id=1)  # another model's table is not applied
    with pytest.raises(ValueError, match=re.escape(f"{path}: [model2] train.max_epochs must be >= 1, got 0")):
        load_experiment(str(path), model_id=2)


def test_unknown_keys_stay_refused(tmp_path):
    path = write_recipe(tmp_path, "train", "max_epoch", 3)
    with pytest.raises(ValueError, match=re.escape(f"{path}: unknown config key 'train.max_epoch'")):
        load_experiment(str(path))
    path.write_text("[trian]\nmax_epochs = 3\n")
    with pytest.raises(ValueError, match=re.escape(f"{path}: unknown config key 'trian'")):
        load_experiment(str(path))


def test_the_cli_reports_a_bad_value_before_any_run_folder(tmp_path, capsys):
    path = write_recipe(tmp_path, "train", "max_epochs", -3)
    runs = tmp_path / "runs"
    status = cli.main(
        [
            "loso",
            "--model",
            "1",
            "--data",
            str(tmp_path / "none"),
            "--runs",
            str(runs),
            "--experiment",
            str(path),
        ]
    )
    assert status == 2
    error = capsys.readouterr().err
    assert f"{path}: train.max_epochs must be >= 1, got -3" in error and "Traceback" not in error
    assert not runs.exists()
