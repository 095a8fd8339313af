"""cremad replicates attention in recurrent networks for speech emotion recognition on CREMA-D, end to end.

The `cremad` command: each subcommand lives in its own module, imported only when used, so that
`cremad features` never pays for importing TensorFlow.

A command module provides `add_arguments(parser)` and `run(args) -> int`.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from cremad import CremadError, __version__
from cremad.process import quiet_libraries

COMMANDS = {
    "synth": ("cremad.synth", "write the deterministic demo corpus (CREMA-D names)"),
    "manifest": ("cremad.corpus", "write a corpus's clip list as an editable CSV manifest"),
    "features": ("cremad.features", "extract and cache the paper's MFCCs"),
    "models": ("cremad.model_names", "print the model ids (the paper's four; --all: every one)"),
    "loso": ("cremad.loso", "train a model in leave-one-actor-out folds"),
    "baseline": ("cremad.baseline", "functionals + SVM in the same leave-one-actor-out folds (a yardstick)"),
    "select": ("cremad.selection", "score candidate recipes by validation inside the training actors"),
    "summarize": ("cremad.metrics", "aggregate saved fold predictions into summary.json"),
    "figures": ("cremad.figures", "Table II, Fig. 2 and confusion matrices from saved runs"),
    "archive": (
        "cremad.runs.archive",
        "copy finished runs without their models (predictions, histories, summaries)",
    ),
    "download": ("cremad.download", "download and verify CREMA-D"),
    "train": ("cremad.train", "train one model on all actors for use on new audio"),
    "predict": ("cremad.predict", "classify WAV files with a trained model"),
    "perception": ("cremad.perception", "compare models with CREMA-D's crowd ratings"),
    "report": ("cremad.report", "every test clip's predictions, audio and attention in an offline page"),
}
USES_KERAS = {"loso", "select", "train", "predict"}  # the commands that import Keras (and so TensorFlow)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cremad", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"cremad {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        if name == command:  # only the chosen command's module is imported
            module = importlib.import_module(module_name)
            adder = getattr(module, f"add_{name}_arguments", None) or module.add_arguments
            adder(sub)
            sub.set_defaults(handler=getattr(module, f"run_{name}", None) or module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # Figures are files, never windows: matplotlib's file-only backend for the whole process,
    # set here once (library code draws on Figure objects and configures nothing).
    os.environ.setdefault("MPLBACKEND", "Agg")
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    if command not in COMMANDS:
        command = None
    # -v (any subcommand's) shows the libraries' own logs; read before anything imports them.
    if not any(arg == "--verbose" or (arg.startswith("-v") and set(arg[1:]) == {"v"}) for arg in argv):
        quiet_libraries(import_keras=command in USES_KERAS, quiet_pooch=command == "download")
    parser = build_parser(command)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    verbose = getattr(args, "verbose", 0) or 0
    logging.basicConfig(
        level=logging.DEBUG if verbose > 1 else logging.INFO,
        format="%(message)s" if not verbose else "%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.handler(args) or 0)
    except (CremadError, ValueError, FileNotFoundError) as error:
        print(f"cremad {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"cremad {args.command}: interrupted", file=sys.stderr)
        return 130
