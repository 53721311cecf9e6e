"""Nothing lost, nothing escapes (issue 26), for the commands that run a
network: run folders, features folders and export folders held by one
process, a full disk or a torn checkpoint met with one line and a retry that
ends where an uninterrupted run ends, incomplete or lying conversions and
damaged records refused. (The cases without a network are in test_safety.py;
its helpers are shared.)"""
import errno
import json
import os
import shutil

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

from fgtf import evaluate, export, extract_features, runs, train
from fgtf.checkpoints import save_keras_weights
from fgtf.convert import ConvertOptions, convert
from fgtf.datasets.synthetic import generation
from fgtf.datasets.synthetic.__main__ import main as synthetic_main
from fgtf.transfer import feature_store, linear
from fgtf.transfer.feature_store import feature_files, load_features
from test_safety import _edit_manifest, _exit, _held_elsewhere, _one_line, _tree
from tfrecord_tools import verify
from fgtf.command_line import EXIT_ENVIRONMENT
from fgtf.errors import UserError
from fgtf.export.__main__ import main as export_command
import tiny_models

pytestmark = pytest.mark.usefixtures("tiny_models_registered")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny synthetic dataset (raw images and one shard per split), a 2-step
    tiny_net run at 32 px and a tiny_net .weights.h5."""
    root = tmp_path_factory.mktemp("safety")
    tfrecords = tiny_models.tiny_synthetic_tfrecords(root, classes=3, train_per_class=4, val_per_class=2,
                                                     num_shards=1)
    run = str(root / "run")
    keras.backend.clear_session()
    train.main(_train_args(tfrecords, run, "--max_number_of_steps", "2"))
    weights = str(root / "tiny.weights.h5")
    save_keras_weights(tiny_models.TinyNet(classes=3, classifier_activation=None), weights, "tiny_net", 3, False)
    return {"root": root, "raw": str(root / "raw"), "tfrecords": tfrecords, "run": run, "weights": weights}


def _train_args(tfrecords, run, *extra):
    return ["--dataset_dir", tfrecords, "--run_dir", str(run), "--model", "tiny_net", "--image_size", "32",
            "--batch_size", "4", "--optimizer", "momentum", "--learning_rate", "0.05", "--weight_decay", "0",
            "--save_interval_secs", "0", "--seed", "3", *extra]


def _weights(run):
    network = runs.build_network(runs.load_run_config(run))
    runs.restore_for_inference(network, runs.latest_checkpoint(str(run)), use_ema=False)
    return [np.asarray(w) for w in network.weights]


def _same_weights(run, reference):
    for a, b in zip(_weights(run), _weights(reference)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def _copy_shards(world, tmp_path):
    copy = tmp_path / "shards"
    shutil.copytree(world["tfrecords"], copy)
    return str(copy)


def _full_disk_at(monkeypatch, step):
    """CheckpointManager.save fails at `step` as on a full disk: TensorFlow
    leaves its ckpt-N_temp folder and raises ResourceExhaustedError."""
    save = tf.train.CheckpointManager.save

    def failing_save(self, checkpoint_number=None, **options):
        if checkpoint_number == step:
            os.makedirs(os.path.join(self.directory, f"ckpt-{step}_temp"), exist_ok=True)
            raise tf.errors.ResourceExhaustedError(
                None, None, f"{{{{function_node __wrapped__SaveV2}}}} {self.directory}/ckpt-{step}_temp/"
                            f"part-00000-of-00001.data-00000-of-00001.tempstate1; No space left on device [Op:SaveV2]")
        return save(self, checkpoint_number=checkpoint_number, **options)

    monkeypatch.setattr(tf.train.CheckpointManager, "save", failing_save)


# --- (5) run folders: one process; (11) a full disk; (15) a torn checkpoint ------------------------

def test_a_second_train_on_a_held_run_folder_is_turned_away(world, tmp_path, capsys):
    # Before: the second "resumed" from the first's checkpoint and both exited 0 (final weights differing
    # from a clean run in 92 tensors); started together, one crashed and left ckpt-47_temp.
    run = tmp_path / "run"
    with _held_elsewhere(run) as holder:
        code, _, err = _exit(train.main, _train_args(world["tfrecords"], run, "--max_number_of_steps", "2"), capsys)
        assert code == 2
        _one_line(err, f"{run} is in use by process {holder.pid} on ")
        assert os.listdir(run) == [".fgtf.lock"]


@pytest.mark.slow  # trains twice
def test_a_full_disk_at_the_first_checkpoint_leaves_no_run_and_a_retry_may_change_settings(
        world, tmp_path, capsys, monkeypatch):
    # Before: a 56-line traceback; run_config.json and an empty ckpt-1_temp stayed, and a retry with another
    # batch size was refused as "a run with other settings", pointed at a folder with no checkpoint.
    run = tmp_path / "run"
    _full_disk_at(monkeypatch, 1)
    code, _, err = _exit(train.main, _train_args(world["tfrecords"], run, "--max_number_of_steps", "2"), capsys)
    assert code == EXIT_ENVIRONMENT
    _one_line(err, "the disk is full (", "No space left on device); free space, then run the same command again")
    assert os.listdir(run) == ["ckpt-1_temp"]  # what TensorFlow left; no run_config.json
    monkeypatch.undo()
    code, printed, _ = _exit(train.main, _train_args(world["tfrecords"], run, "--max_number_of_steps", "2",
                                                     "--batch_size", "2"), capsys)
    assert code == 0 and "step 2/2" in printed
    assert runs.load_run_config(run).batch_size == 2 and "ckpt-1_temp" not in os.listdir(run)


@pytest.mark.slow  # trains twice
def test_a_full_disk_mid_run_then_a_retry_ends_with_the_uninterrupted_weights(world, tmp_path, capsys, monkeypatch):
    steps = ["--max_number_of_steps", "6"]
    reference = tmp_path / "reference"
    assert _exit(train.main, _train_args(world["tfrecords"], reference, *steps), capsys)[0] == 0
    run = tmp_path / "run"
    _full_disk_at(monkeypatch, 4)
    code, _, err = _exit(train.main, _train_args(world["tfrecords"], run, *steps), capsys)
    assert code == EXIT_ENVIRONMENT
    _one_line(err, "the disk is full")
    assert runs.checkpoint_step(runs.latest_checkpoint(str(run))) == 3
    monkeypatch.undo()
    code, printed, _ = _exit(train.main, _train_args(world["tfrecords"], run, *steps), capsys)
    assert code == 0 and "resumed from" in printed and "ckpt-4_temp" not in os.listdir(run)
    _same_weights(run, reference)


@pytest.mark.slow  # trains twice
def test_a_torn_latest_checkpoint_falls_back_to_the_one_before(world, tmp_path, capsys):
    # Before: a traceback (no fall-back to the previous checkpoint).
    steps = ["--max_number_of_steps", "5"]
    reference = tmp_path / "reference"
    assert _exit(train.main, _train_args(world["tfrecords"], reference, *steps), capsys)[0] == 0
    run = tmp_path / "run"
    assert _exit(train.main, _train_args(world["tfrecords"], run, *steps), capsys)[0] == 0
    data = run / "ckpt-5.data-00000-of-00001"
    with open(data, "r+b") as handle:  # cut short, as by a crash or a full disk
        handle.truncate(data.stat().st_size // 2)
    (run / runs.DONE).unlink()
    code, _, err = _exit(evaluate.main, ["--checkpoint", str(run), "--dataset_dir", world["tfrecords"],
                                         "--out", str(tmp_path / "eval")], capsys)
    assert code == 2
    _one_line(err, f"checkpoint {run}/ckpt-5 is unreadable (", "pass an earlier ckpt-N prefix")
    code, printed, err = _exit(train.main, _train_args(world["tfrecords"], run, *steps), capsys)
    assert code == 0
    assert f"{run}/ckpt-5 is unreadable (" in err and f"resuming from {run}/ckpt-4" in err
    assert f"resumed from {run}/ckpt-4 at step 4" in printed and "step 5/5" in printed
    _same_weights(run, reference)


def test_a_run_config_of_odd_types_is_one_line(world, tmp_path, capsys):
    # Before: a traceback.
    run = tmp_path / "run"
    shutil.copytree(world["run"], run)
    config = json.loads((run / runs.RUN_CONFIG).read_text())
    (run / runs.RUN_CONFIG).write_text(json.dumps({**config, "num_classes": "3"}))
    code, _, err = _exit(evaluate.main, ["--checkpoint", str(run), "--dataset_dir", world["tfrecords"]], capsys)
    assert code == 2
    _one_line(err, 'run_config.json records num_classes "3", not a whole number of at least 1')


# --- (8) incomplete conversions, (9) manifests that lie, (10) labels -----------------------------

def test_train_and_evaluate_refuse_an_unfinished_conversion(world, tmp_path, capsys):
    # Before: train trained on a conversion marked complete: false (600 of 800 images).
    partial = str(tmp_path / "partial")
    convert(ConvertOptions(dataset="synthetic", num_shards=2, dataset_dir=world["raw"], output_dir=partial,
                           shard_range=(0, 1), progress=False))
    run = tmp_path / "run"
    code, _, err = _exit(train.main, _train_args(partial, run, "--max_number_of_steps", "2"), capsys)
    assert code == 2
    _one_line(err, "the conversion of the train split in", "is unfinished (1 of 2 shards written)")
    assert not run.exists()
    code, _, err = _exit(evaluate.main, ["--checkpoint", world["run"], "--dataset_dir", partial,
                                         "--out", str(tmp_path / "eval")], capsys)
    assert code == 2
    _one_line(err, "the conversion of the validation split in")


def test_train_refuses_a_manifest_whose_totals_are_not_its_shards(world, tmp_path, capsys):
    # Before: 1,000 records claimed for 12 made `train --epochs 1` run 250 steps instead of 3.
    shards = _copy_shards(world, tmp_path)
    _edit_manifest(shards, lambda data: data["splits"]["train"].update(records=1000))
    code, _, err = _exit(train.main, _train_args(shards, tmp_path / "run", "--epochs", "1"), capsys)
    assert code == 2
    _one_line(err, "is not a sound conversion manifest: split train: its records (1000) is not that of its "
                   "shards (12)")
    assert verify.verify_dir(shards)[0][0][0] == "manifest.json"


def test_train_refuses_labels_that_cannot_number_the_classes(world, tmp_path, capsys):
    # Before: a label of 1e9 ended in an out-of-memory traceback.
    raw = tmp_path / "raw"
    shutil.copytree(world["raw"], raw)
    (raw / "classes.txt").unlink()
    lines = (raw / "train.txt").read_text().splitlines()
    (raw / "train.txt").write_text("\n".join(lines[:-1] + [lines[-1].rpartition(": ")[0] + ": 1000000000"]) + "\n")
    shards = str(tmp_path / "shards")
    convert(ConvertOptions(dataset="synthetic", num_shards=1, dataset_dir=str(raw), output_dir=shards, progress=False))
    code, _, err = _exit(train.main, _train_args(shards, tmp_path / "run", "--max_number_of_steps", "1"), capsys)
    assert code == 2
    _one_line(err, "have labels up to 1000000000 but are only 12", "give --num_classes if there really are")


def test_a_weights_record_claiming_a_billion_classes_is_refused(world, tmp_path, capsys):
    # Before: an out-of-memory traceback.
    weights = tmp_path / "claims.weights.h5"
    shutil.copy(world["weights"], weights)
    with h5py.File(weights, "a") as handle:
        handle.attrs["fgtf_classes"] = 10**9
    code, _, err = _exit(evaluate.main, ["--checkpoint", str(weights), "--dataset_dir", world["tfrecords"],
                                         "--out", str(tmp_path / "eval")], capsys)
    assert code == 2
    _one_line(err, "records 1000000000 classes, but none of its weights has that size")
    assert not (tmp_path / "eval").exists()


# --- (6) features folders: one process; (7) all-or-nothing splits; sums checked -----------------

def _extract(world, out, *extra):
    return ["--dataset", "synthetic", "--dataset_dir", world["raw"], "--checkpoint", world["run"], "--out",
            str(out), *extra]


def test_a_second_extraction_into_a_held_features_folder_is_turned_away(world, tmp_path, capsys):
    # Before: in 2 of 8 tries the train features came from one network and the validation features from the
    # other, while extract_features.json named one.
    out = tmp_path / "features"
    with _held_elsewhere(out) as holder:
        code, _, err = _exit(extract_features.main, _extract(world, out), capsys)
        assert code == 2
        _one_line(err, f"{out} is in use by process {holder.pid} on ")
    assert not out.exists()


def test_a_full_disk_during_overwrite_leaves_the_old_split_whole(world, tmp_path, capsys, monkeypatch):
    # Before: --overwrite interrupted by a full disk left new labels and paths beside old features; the next
    # run said "already extracted" and the probe read wrong labels.
    out = tmp_path / "features"
    assert _exit(extract_features.main, _extract(world, out, "--splits", "val"), capsys)[0] == 0
    before = _tree(tmp_path)
    save = np.save

    def full_disk(file, array, **options):
        if np.ndim(array) == 2:  # the features, after the labels
            raise OSError(errno.ENOSPC, "No space left on device", getattr(file, "name", file))
        return save(file, array, **options)

    monkeypatch.setattr(np, "save", full_disk)
    code, _, err = _exit(extract_features.main, _extract(world, out, "--splits", "val", "--overwrite"), capsys)
    assert code == EXIT_ENVIRONMENT
    _one_line(err, "the disk is full (No space left on device: ")
    assert _tree(tmp_path) == before  # the old split, whole; no temporary left
    monkeypatch.undo()
    assert _exit(extract_features.main, _extract(world, out, "--splits", "val", "--overwrite"), capsys)[0] == 0
    assert len(load_features(str(out), "synthetic", "validation")[0]) == 6


class _Killed(BaseException):
    """Stands for SIGKILL between two renames."""


def test_a_split_left_half_replaced_is_refused_by_readers_and_extracted_again(world, tmp_path, capsys, monkeypatch):
    out = tmp_path / "features"
    assert _exit(extract_features.main, _extract(world, out, "--splits", "val"), capsys)[0] == 0
    replace = os.replace

    def killed_before_the_features(source, destination):
        if str(destination).endswith("_feature_val.npy"):
            raise _Killed()
        replace(source, destination)

    monkeypatch.setattr(os, "replace", killed_before_the_features)
    with pytest.raises(_Killed):
        extract_features.main(_extract(world, out, "--splits", "val", "--overwrite"))
    monkeypatch.undo()
    capsys.readouterr()
    with pytest.raises(UserError, match="holds synthetic validation features that extract_features.json does not "
                                        "list: their writing was interrupted; extract them again"):
        load_features(str(out), "synthetic", "validation")
    (out / ".synthetic_val.tmp-999999999").mkdir()  # what a SIGKILL leaves of the staging folder
    code, printed, _ = _exit(extract_features.main, _extract(world, out, "--splits", "val"), capsys)
    assert code == 0 and "synthetic/validation: 6 x 16 features" in printed  # extracted again, not "already"
    assert not [name for name in os.listdir(out) if ".tmp-" in name]
    assert len(load_features(str(out), "synthetic", "validation")[1]) == 6


def test_readers_check_the_recorded_sums(world, tmp_path, capsys):
    out = tmp_path / "features"
    assert _exit(extract_features.main, _extract(world, out), capsys)[0] == 0
    labels = feature_files(str(out), "synthetic", "train")["label"]
    np.save(labels, np.load(labels)[::-1])  # another extraction's labels, say
    code, _, err = _exit(linear.main, ["--features", str(out), "--dataset", "synthetic"], capsys)
    assert code == 2
    _one_line(err, "synthetic_label_train.npy is not the file fgtf.extract_features wrote (its sha256 differs")


def test_an_object_npy_is_one_line(tmp_path, capsys):
    # Before: a traceback from np.load.
    feature_store.save_features(str(tmp_path), "toy", "train", np.ones((2, 3)), [0, 1])
    feature_store.save_features(str(tmp_path), "toy", "validation", np.ones((2, 3)), [0, 1])
    np.save(tmp_path / "toy_feature_train.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    code, _, err = _exit(linear.main, ["--features", str(tmp_path), "--dataset", "toy"], capsys)
    assert code == 2
    _one_line(err, "toy_feature_train.npy is not a plain numeric .npy file")


# --- export folders ------------------------------------------------------------------------------

def _export(world, out, *extra):
    return ["--checkpoint", world["weights"], "--format", "keras", "--out", str(out), *extra]


def test_export_full_disk_and_killed_leftovers_and_a_held_folder(world, tmp_path, capsys, monkeypatch):
    # Before: a full disk was a traceback; a kill left hidden .X.tmp-PID folders behind.
    out = tmp_path / "exported"

    def full_disk(model, path, *args):
        open(path, "wb").close()
        raise OSError(errno.ENOSPC, "No space left on device", path)

    monkeypatch.setattr(export, "write_artifact", full_disk)
    code, _, err = _exit(export_command, _export(world, out), capsys)
    assert code == EXIT_ENVIRONMENT
    _one_line(err, "the disk is full (No space left on device: ")
    assert os.listdir(tmp_path) == []
    monkeypatch.undo()
    (tmp_path / ".exported.tmp-999999999").mkdir()  # a killed export's
    (tmp_path / ".exported.tmp-999999999" / "model.keras").write_bytes(b"half")
    (tmp_path / ".other.tmp-999999999").mkdir()  # another folder's: not this export's business
    with _held_elsewhere(out, beside=True) as holder:
        code, _, err = _exit(export_command, _export(world, out), capsys)
        assert code == 2
        _one_line(err, f"{out} is in use by process {holder.pid} on ")
    assert _exit(export_command, _export(world, out), capsys)[0] == 0
    assert sorted(os.listdir(tmp_path)) == [".other.tmp-999999999", "exported"]
    assert sorted(os.listdir(out)) == ["labels.txt", "model.keras", "model_card.json"]


# --- the synthetic generator -----------------------------------------------------------------------

def test_the_generator_on_a_full_disk_is_one_line_and_leaves_nothing(tmp_path, capsys, monkeypatch):
    # Before: a traceback.
    def full_disk(path, lines):
        raise OSError(errno.ENOSPC, "No space left on device", path)

    monkeypatch.setattr(generation, "_write_lines", full_disk)
    code, _, err = _exit(synthetic_main, ["--out", str(tmp_path / "synthetic"), "--classes", "2",
                                          "--train_per_class", "1", "--val_per_class", "1", "--image_size", "32"],
                         capsys)
    assert code == EXIT_ENVIRONMENT
    _one_line(err, "the disk is full (No space left on device: ")
    assert os.listdir(tmp_path) == []


# --- (3) a SavedModel is a program ------------------------------------------------------------------

def test_the_help_says_a_saved_model_is_a_program(capsys):
    for main in (extract_features.main, export_command, evaluate.main):
        code, printed, _ = _exit(main, ["--help"], capsys)
        assert code == 0 and "a program that runs in this process: only one you trust" in " ".join(printed.split())
