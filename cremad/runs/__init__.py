"""The run folder: its layout and every file in it are read and written here, and only here.

    <runs>/<corpus>/<experiment>/<model>/seed<s>/
        run.json              what made the run: experiment, resolved config, data, versions, command
        summary.json          its numbers (written by `cremad.metrics.summarize`)
        fold-<actor>/         the leave-one-actor-out fold that held <actor> out:
            predictions.csv   clip,actor,true,predicted,p_ANG,...,p_SAD
            confusion.csv     counts, rows true, columns predicted
            config.json       who was used for what, seed, epochs, versions
            history.csv  history-refit.csv  scaler.npz  attention.npz  model.keras   (neural models)
            done.json         written last: the fold is finished

`<model>` is a name: model1..model4 for the paper's models (`cremad.model_names.model_name`), or any
other estimator's (a baseline writes the same fold files through `finish_fold`, without the
neural extras). `<s>` is train.seed. Every file is written atomically, so an interrupted run loses
at most the folds in progress; `pending_folds` skips finished ones and `prepare_run` refuses to
mix a run folder with a run of another configuration. Older folders without the seed level
(`<corpus>/model<k>`, `<corpus>/<experiment>/model<k>`) are recognised and the command to move
them printed (`old_layout_move`).
"""

from cremad.runs.files import (
    Predictions,
    finish_fold,
    history_loggers,
    history_paths,
    load_predictions,
    pending_folds,
    read_attention,
    read_fold_attention,
    read_fold_files,
    read_fold_predictions,
    save_model,
    start_fold,
    write_attention,
    write_confusion,
    write_fold_files,
    write_predictions,
    write_scaler,
    write_summary,
)
from cremad.runs.layout import (
    ATTENTION,
    CONFUSION,
    DONE,
    FOLD_CONFIG,
    HISTORY,
    HISTORY_REFIT,
    MODEL_FILE,
    PREDICTION_COLUMNS,
    PREDICTIONS,
    RUN_JSON,
    SCALER,
    SUMMARY_JSON,
    RunKey,
    add_selection_arguments,
    config_changes,
    find_runs,
    fold_dir,
    fold_dirs,
    library_versions,
    old_layout_move,
    parse_selection,
    prepare_run,
    read_json,
    read_run,
    refuse_old_layout,
    run_dir,
    run_record,
    select_runs,
    selected_runs,
    selection_of,
)

__all__ = [
    "Predictions",
    "finish_fold",
    "history_loggers",
    "history_paths",
    "load_predictions",
    "pending_folds",
    "read_attention",
    "read_fold_attention",
    "read_fold_files",
    "read_fold_predictions",
    "save_model",
    "start_fold",
    "write_attention",
    "write_confusion",
    "write_fold_files",
    "write_predictions",
    "write_scaler",
    "write_summary",
    "ATTENTION",
    "CONFUSION",
    "DONE",
    "FOLD_CONFIG",
    "HISTORY",
    "HISTORY_REFIT",
    "MODEL_FILE",
    "PREDICTION_COLUMNS",
    "PREDICTIONS",
    "RUN_JSON",
    "SCALER",
    "SUMMARY_JSON",
    "RunKey",
    "add_selection_arguments",
    "config_changes",
    "find_runs",
    "fold_dir",
    "fold_dirs",
    "library_versions",
    "old_layout_move",
    "parse_selection",
    "prepare_run",
    "read_json",
    "read_run",
    "refuse_old_layout",
    "run_dir",
    "run_record",
    "select_runs",
    "selected_runs",
    "selection_of",
]
