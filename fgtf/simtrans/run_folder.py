"""A SimTrans run folder (its layout: `python -m fgtf.simtrans --help`):
run.json, written by pretrain, and per step its outputs, its metrics.json
and its step.json, the record of the settings it ran with and of the earlier
steps' outputs it used.

A step's record is written last, after its outputs, and removed before they
are replaced, so an interrupted step never passes for finished;
`current_step` refuses the outputs of a step when an earlier step they came
from was run again since (they are stale).
"""
import json
import os
import uuid

from fgtf.fileio import atomic_path, write_json
from fgtf.errors import UserError

RUN_FILE = "run.json"
STEP_FILE = "step.json"
METRICS_FILE = "metrics.json"
BACKBONE_WEIGHTS = os.path.join("pretrain", "backbone.weights.h5")
SIMNET_WEIGHTS = os.path.join("simnet", "simnet.weights.h5")
CLASSIFIER_WEIGHTS = os.path.join("train", "classifier.weights.h5")


def load_run(run_dir):
    """run.json and the dataset's weak-shot split it names."""
    from fgtf.datasets import weak_shot_split

    run = read_run(run_dir)
    if run is None:
        raise UserError(f"{os.path.join(run_dir, RUN_FILE)} is missing; run `python -m fgtf.simtrans pretrain "
                        f"--run_dir {run_dir}` first")
    return run, weak_shot_split(run["dataset"], run["dataset_dir"], run["novel_classes"], run["base_classes"])


def read_run(folder):
    """The run.json of the SimTrans run folder `folder`; None when `folder` is not one."""
    path = os.path.join(folder, RUN_FILE)
    return _read_json(path) if os.path.isfile(path) else None


def write_run(run_dir, run):
    write_json(os.path.join(run_dir, RUN_FILE), run)


def current_step(run_dir, step):
    """The record (step.json) of `step`'s finished outputs, refused when the
    step has not finished or when an earlier step it used was run again since
    (its outputs are then stale)."""
    path = os.path.join(run_dir, step, STEP_FILE)
    if not os.path.isfile(path):
        raise UserError(f"{path} is missing (the {step} step has not finished in this run folder); run "
                        f"`python -m fgtf.simtrans {step} --run_dir {run_dir}` first")
    record = _read_json(path)
    for earlier, used in record["inputs"].items():
        current = current_step(run_dir, earlier)
        if current["id"] != used["id"]:
            changed = sorted(k for k in set(used["settings"]) | set(current["settings"])
                             if used["settings"].get(k) != current["settings"].get(k))
            reason = f"its settings changed ({', '.join(changed)})" if changed else "it was run again"
            raise UserError(f"the {step} outputs in {run_dir} are stale: they were computed from an earlier "
                            f"{earlier} step and {reason}; run `python -m fgtf.simtrans {step} --run_dir "
                            f"{run_dir}` again")
    return record


def forget_step(run_dir, step):
    """Drop `step`'s record before its outputs are replaced, so that an
    interrupted step never passes for finished."""
    path = os.path.join(run_dir, step, STEP_FILE)
    if os.path.exists(path):
        os.remove(path)


def finish_step(run_dir, step, metrics, settings, inputs):
    """Write `step`'s metrics, then its record: a new id, the settings it ran
    with and the records of the earlier steps whose outputs it used."""
    write_json(os.path.join(run_dir, step, METRICS_FILE), metrics)
    write_json(os.path.join(run_dir, step, STEP_FILE),
               {"id": uuid.uuid4().hex, "settings": settings,
                "inputs": {name: {"id": record["id"], "settings": record["settings"]}
                           for name, record in inputs.items()}})
    print(f"[{step}] done -> {os.path.join(run_dir, step)}", flush=True)


def save_weights(model, run_dir, relative):
    """model.save_weights to a temporary name, renamed into place on success.
    Pass an uncompiled model: a compiled one would also store its optimizer."""
    with atomic_path(os.path.join(run_dir, relative)) as tmp:
        model.save_weights(tmp)


def weights_file(run_dir, formula):
    """weights/<formula>.json: {image path: weight} of the novel training images."""
    return os.path.join(run_dir, "weights", f"{formula}.json")


def read_weights(run_dir, formula):
    return _read_json(weights_file(run_dir, formula))


def _read_json(path):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)
