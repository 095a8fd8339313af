"""How long the paper's 91-fold LOSO takes: measured epoch time -> projected wall time.

    python bench/bench_loso.py                                   # CPU: every model, a small fold, projected
    python bench/bench_loso.py --epochs-from runs/emodb/paper --out bench/results/loso-cpu.json
    KERAS_BACKEND=jax python bench/bench_loso.py --gpu --out bench/results/loso-gpu.json

Each model trains real folds through `cremad.folds.run_fold` (the code `cremad loso` runs) on
CREMA-D-shaped random features: 82 clips per actor, 501 frames (the paper's 5.005 s longest
clip), 13 MFCCs; `--data DIR` uses a real corpus instead. An epoch timer records every epoch;
the first (tracing and compiling) is left out of the epoch time and counted with model building
and prediction as per-fold overhead. The projection for the paper's LOSO is

    91 folds x (overhead + epochs per fold x epoch time scaled to 6624 fit + 736 validation clips)

with epochs per fold taken from finished runs (`--epochs-from`, the mean of their done.json
epochs, e.g. the Emo-DB runs) or else the config's max_epochs (an upper bound).

`--gpu` trains a full-size fold per model (`--epochs` epochs) and then packs 1, 2 and 4 folds
of `--pack-model` on the one GPU, with the Ray backend (`--gpus-per-fold` 1, 0.5, 0.25) when Ray
is installed, else as 1, 2 and 4 concurrent processes (what `--shard i/k` jobs would do),
reporting folds per hour and the speed-up over one fold at a time. It uses Keras APIs only, so
it runs with KERAS_BACKEND=jax as well as tensorflow.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "bench")]  # run as a script from a plain checkout

from cremad import CremadError  # noqa: E402 (after the path)
from cremad.corpus import CORPORA  # noqa: E402

CREMAD_ACTORS, CLIPS_PER_ACTOR, CREMAD_FRAMES = 91, 82, 501
CREMAD_FIT, CREMAD_VALIDATION = 6624, 736  # 81 and 9 training actors x ~82 clips (section II-C)
VALIDATION_COST = 1 / 3  # a validation clip is a forward pass, about a third of a training step


def synthetic_features(n_actors: int, n_frames: int, clips_per_actor: int = CLIPS_PER_ACTOR, seed: int = 0):
    """A FeatureSet of random MFCC-shaped clips with CREMA-D's actor and emotion layout."""
    import numpy as np

    from cremad.config import EMOTIONS, FeatureConfig
    from cremad.corpus import Clip
    from cremad.features import FeatureSet

    rng = np.random.default_rng(seed)
    clips = [
        Clip(
            f"/synthetic/{1001 + a}_{i:03d}.wav",
            f"{1001 + a}_{i:03d}",
            str(1001 + a),
            "SYN",
            EMOTIONS[i % len(EMOTIONS)],
            "XX",
        )
        for a in range(n_actors)
        for i in range(clips_per_actor)
    ]
    features = rng.standard_normal((len(clips), n_frames, 13)).astype("float32")
    pad_to = (n_frames - 1) * 160
    # Clip lengths as CREMA-D's spread (1.27-5.0 s padded to 5.0 s): the default recipe needs
    # them to tell each clip's own frames from its padding.
    lengths = rng.integers(int(0.25 * pad_to), pad_to + 1, size=len(clips))
    return FeatureSet(features, clips, FeatureConfig(), pad_to=pad_to, cache_key="synthetic", lengths=lengths)


def epoch_timer():
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.seconds, self.started = [], time.perf_counter()

        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self.started)

    return EpochTimer()


def time_fold(model_id: int, features, epochs: int, out_dir: Path) -> dict:
    """Train one fold (first actor held out) for exactly `epochs` epochs and time it."""
    import numpy as np

    from cremad.config import ExperimentConfig, replace
    from cremad.folds import run_fold
    from cremad.splits import split_fold

    config = replace(ExperimentConfig(), {"train": {"max_epochs": epochs, "patience": epochs + 1}})
    timer = epoch_timer()
    test_actor = str(features.actors[0])
    started = time.perf_counter()
    run_fold(
        config,
        features,
        test_actor,
        out_dir / f"model{model_id}",
        model_id,
        save_model=False,
        callbacks=(timer,),
    )
    fold_seconds = time.perf_counter() - started
    split = split_fold(features.actors, test_actor, config.train.validation_fraction, config.train.seed)
    steady = timer.seconds[1:] or timer.seconds
    return {
        "model": model_id,
        "epochs_run": len(timer.seconds),
        "epoch_seconds_all": [round(s, 3) for s in timer.seconds],
        "epoch_seconds": float(np.median(steady)),
        "fold_seconds": round(fold_seconds, 2),
        # Model building, the first epoch's tracing and compiling, prediction and file writing.
        "overhead_seconds": round(fold_seconds - float(np.median(steady)) * len(timer.seconds), 2),
        # The clips the timed epochs fitted: without early stopping (the default) every training
        # actor fits and none is held back for validation.
        "n_fit": len(split.fit_index) + (0 if config.train.early_stopping else len(split.validation_index)),
        "n_validation": len(split.validation_index) if config.train.early_stopping else 0,
        "n_frames": int(features.features.shape[1]),
    }


def epochs_per_fold(runs_root: str | None, model_id: int, default: int) -> tuple[float, str]:
    """Mean epochs trained per finished fold of model<k>'s runs under `runs_root` (one corpus and
    experiment, see `cremad.runs.select_runs`; refit epochs included), else `default`."""
    if runs_root:
        from cremad import runs
        from cremad.model_names import model_name

        try:
            selected = runs.select_runs(runs_root, models=[model_name(model_id)])
        except CremadError as error:
            print(f"  --epochs-from: {error}; using {default}")
            selected = {}
        done = [
            runs.read_json(folder / runs.DONE)
            for run_dir in selected.values()
            for folder in runs.fold_dirs(run_dir).values()
            if (folder / runs.DONE).is_file()
        ]
        epochs = [record.get("epochs_trained", record["epochs"]) for record in done]
        if epochs:
            return sum(epochs) / len(epochs), f"mean of {len(epochs)} finished folds in {runs_root}"
    return float(default), "config max_epochs (upper bound)"


def project(measured: dict, epochs: float, n_folds: int = CREMAD_ACTORS) -> dict:
    """Scale a measured epoch to a CREMA-D fold (clips and frames) and multiply out."""
    frames_scale = CREMAD_FRAMES / measured["n_frames"]  # LSTM time is linear in sequence length
    clips_scale = (CREMAD_FIT + VALIDATION_COST * CREMAD_VALIDATION) / (
        measured["n_fit"] + VALIDATION_COST * measured["n_validation"]
    )
    epoch = measured["epoch_seconds"] * clips_scale * frames_scale
    fold = measured["overhead_seconds"] + epochs * epoch
    return {
        "projected_epoch_seconds": round(epoch, 2),
        "epochs_per_fold": round(epochs, 1),
        "projected_fold_seconds": round(fold, 1),
        "projected_hours": round(n_folds * fold / 3600, 2),
    }


def load_bench_features(
    data: str | None, corpus: str, cache_dir: str, gpu: bool, actors: int, clips_per_actor: int
):
    """The features a bench run trains on: a real corpus, or CREMA-D-shaped random ones."""
    if data:
        from cremad.features import load_features

        return load_features(data, corpus=corpus, cache_dir=cache_dir, progress=False)
    if gpu:
        return synthetic_features(CREMAD_ACTORS, CREMAD_FRAMES)
    return synthetic_features(actors, CREMAD_FRAMES, clips_per_actor)


_WORKER_FEATURES = None


def _process_init(feature_args):
    global _WORKER_FEATURES
    _WORKER_FEATURES = load_bench_features(*feature_args)


def _process_fold(config, model_id, actor, out_dir):
    from cremad.folds import run_fold

    return run_fold(config, _WORKER_FEATURES, actor, out_dir, model_id, save_model=False)


def pack_folds(
    model_id: int, features, feature_args: tuple, epochs: int, out_dir: Path, method: str, packs=(1, 2, 4)
) -> list[dict]:
    """Folds per hour with 1, 2 and 4 folds sharing the GPU, and the speed-up over one at a time.

    method "ray": `cremad loso --backend ray` with gpus_per_fold = 1/k on one local cluster whose
    workers are started (one 1-epoch fold each) before timing. method "processes": k fresh
    processes (spawned, each loading the features itself), the way k shards (`--shard i/k`)
    would share the GPU without Ray; their start-up and imports count in the time."""
    from cremad.config import ExperimentConfig, replace

    config = replace(ExperimentConfig(), {"train": {"max_epochs": epochs, "patience": epochs + 1}})
    actors = sorted(set(features.actors))
    if method == "ray":
        from cremad.loso import LosoOptions, run_folds, start_ray

        ray = start_ray()  # one cluster for all packs, so workers stay warm between them
        has_gpu = ray.cluster_resources().get("GPU", 0) >= 1  # without one, k folds share the CPUs
        warm = replace(config, {"train": {"max_epochs": 1}})
        options = LosoOptions(
            model_id=model_id,
            save_models=False,
            backend="ray",
            gpus_per_fold=1 / max(packs) if has_gpu else 0,
        )
        run_folds(warm, features, out_dir / "warm", options, actors[: max(packs)])
    results = []
    for pack in packs:
        started = time.perf_counter()
        if method == "ray":
            options = LosoOptions(
                model_id=model_id, save_models=False, backend="ray", gpus_per_fold=1 / pack if has_gpu else 0
            )
            run_folds(config, features, out_dir / f"pack{pack}", options, actors[:pack])
        else:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            with ProcessPoolExecutor(
                pack,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_process_init,
                initargs=(feature_args,),
            ) as pool:
                jobs = [
                    pool.submit(_process_fold, config, model_id, actor, out_dir / f"pack{pack}" / actor)
                    for actor in actors[:pack]
                ]
                [job.result() for job in jobs]
        seconds = time.perf_counter() - started
        results.append(
            {
                "model": model_id,
                "method": method,
                "folds_at_once": pack,
                "epochs": epochs,
                "seconds": round(seconds, 1),
                "folds_per_hour": round(3600 * pack / seconds, 1),
            }
        )
        results[-1]["speedup"] = round(results[-1]["folds_per_hour"] / results[0]["folds_per_hour"], 2)
        print(
            f"  model {model_id} ({method}): {pack} fold(s) at once, {epochs} epochs each: {seconds:.0f} s, "
            f"{results[-1]['folds_per_hour']:.0f} folds/h, speed-up x{results[-1]['speedup']}",
            flush=True,
        )
    if method == "ray":
        ray.shutdown()
    return results


def main(argv=None) -> int:
    from cremad.model_names import PAPER_MODEL_IDS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, nargs="+", default=list(PAPER_MODEL_IDS))  # Table II's
    parser.add_argument("--data", help="real corpus folder (default: CREMA-D-shaped random features)")
    parser.add_argument("--corpus", default="cremad", choices=CORPORA)
    parser.add_argument("--cache-dir", default="cache")
    parser.add_argument(
        "--actors", type=int, default=10, help="CPU mode: actors of the small fold (default 10)"
    )
    parser.add_argument(
        "--clips-per-actor", type=int, default=24, help="CPU mode: clips per actor (default 24)"
    )
    parser.add_argument(
        "--epochs", type=int, default=3, help="epochs timed per model (the first is left out)"
    )
    parser.add_argument("--epochs-from", help="runs folder whose done.json epochs give epochs per fold")
    parser.add_argument("--gpu", action="store_true", help="full-size folds and Ray packing on the GPU")
    parser.add_argument("--pack-model", type=int, default=2, help="GPU mode: model used for packing")
    parser.add_argument("--pack-epochs", type=int, default=3, help="GPU mode: epochs per packed fold")
    parser.add_argument(
        "--pack-method",
        choices=("auto", "ray", "processes"),
        default="auto",
        help="GPU mode: Ray tasks, or plain processes (auto: Ray when installed)",
    )
    parser.add_argument("--no-pack", action="store_true", help="GPU mode: time the single folds only")
    parser.add_argument("--epochs-per-fold", type=float, help="epochs per fold for the projection")
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args(argv)
    # This process trains too, before the Ray workers start: it must not take the whole GPU.
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    from cremad.process import quiet_libraries, warn_if_gpu_unseen

    quiet_libraries(
        import_keras=True
    )  # TensorFlow's start-up lines and retracing warnings, as `cremad loso` does
    warn_if_gpu_unseen()

    import keras
    from bench_models import device_description

    from cremad.config import TrainConfig

    feature_args = (args.data, args.corpus, args.cache_dir, args.gpu, args.actors, args.clips_per_actor)
    features = load_bench_features(*feature_args)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    device = device_description()
    print(
        f"device {device}, {cores} CPU cores, Keras {keras.__version__} ({keras.backend.backend()}); "
        f"features {features.features.shape}",
        flush=True,
    )

    report = {
        "device": device,
        "cpu_cores": cores,
        "keras": keras.__version__,
        "backend": keras.backend.backend(),
        "features_shape": list(features.features.shape),
        "data": args.data or "synthetic",
        "models": [],
    }
    with tempfile.TemporaryDirectory(prefix="bench-loso-") as scratch:
        for model_id in args.models:
            measured = time_fold(model_id, features, args.epochs, Path(scratch))
            if args.epochs_per_fold:
                epochs, source = args.epochs_per_fold, "--epochs-per-fold"
            else:
                epochs, source = epochs_per_fold(args.epochs_from, model_id, TrainConfig().max_epochs)
            measured.update(project(measured, epochs), epochs_source=source)
            report["models"].append(measured)
            print(
                f"model {model_id}: epoch {measured['epoch_seconds']:.2f} s on {measured['n_fit']} clips x "
                f"{measured['n_frames']} frames -> {measured['projected_epoch_seconds']:.0f} s per CREMA-D "
                f"epoch; {measured['epochs_per_fold']:.0f} epochs/fold ({source}) + "
                f"{measured['overhead_seconds']:.0f} s "
                f"-> 91 folds {measured['projected_hours']:.1f} h on {device} ({cores} cores)",
                flush=True,
            )
        total = sum(model["projected_hours"] for model in report["models"])
        print(
            f"projected: models {', '.join(str(m) for m in args.models)} in 91 folds each, {total:.1f} h "
            f"in all on this machine (rough: from {args.epochs} timed epochs of one small fold per model, "
            "scaled to "
            "CREMA-D's clips and frames)",
            flush=True,
        )
        if args.gpu and not args.no_pack:
            method = args.pack_method
            if method == "auto":
                method = "ray" if importlib.util.find_spec("ray") else "processes"
            report["packing"] = pack_folds(
                args.pack_model, features, feature_args, args.pack_epochs, Path(scratch), method
            )
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
