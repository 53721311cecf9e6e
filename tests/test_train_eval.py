"""Evaluation during training (fgtf.train --eval_every_epochs / --eval_every_steps,
fgtf.train_eval) on a tiny backbone and a tiny synthetic dataset: the history,
the best checkpoint and the summary agree with what fgtf.evaluate reports
for those checkpoints, and a killed run resumes its history without repeats."""
import csv
import json
import os
import signal
import subprocess
import sys

import pytest

from fgtf import evaluate, runs, train, train_eval
from fgtf.train_eval import EvaluationSchedule
import tiny_models

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAUNCHER = os.path.join(REPO, "tests", "tiny_models.py")

tiny_models.register()


@pytest.fixture(scope="module")
def tfrecords(tmp_path_factory):
    return tiny_models.tiny_synthetic_tfrecords(tmp_path_factory.mktemp("tiny_synthetic"), classes=4,
                                                train_per_class=8, val_per_class=4, num_shards=2)


def _args(tfrecords, run_dir, *extra):
    return ["--dataset_dir", tfrecords, "--run_dir", str(run_dir), "--model", "tiny_net", "--image_size", "32",
            "--batch_size", "8", "--optimizer", "momentum", "--learning_rate", "0.05", "--log_every_n_steps", "2",
            "--weight_decay", "0", *extra]


def _history(run_dir):
    with open(os.path.join(run_dir, train_eval.HISTORY), newline="") as handle:
        return list(csv.DictReader(handle))


def _evaluate(checkpoint, tfrecords, tmp_path):
    return evaluate.evaluate_checkpoint(str(checkpoint), tfrecords, batch_size=5, eval_dir=str(tmp_path / "eval"))


def _assert_row_is(row, results):
    assert float(row["top1"]) == pytest.approx(results["top1"], abs=1e-6)
    assert float(row["top5"]) == pytest.approx(results["top5"], abs=1e-6)
    assert float(row["mean_per_class_accuracy"]) == pytest.approx(results["mean_per_class_accuracy"], abs=1e-6)
    assert float(row["loss"]) == pytest.approx(results["loss"], rel=1e-4)
    assert int(row["num_images"]) == results["num_images"]


def test_schedule_counts_epochs_exactly():
    # 600 images in batches of 32: epoch k ends at step ceil(18.75 k)
    every_epoch = EvaluationSchedule(57, 600, 32, every_epochs=1)
    assert [s for s in range(58) if every_epoch.is_due(s)] == [19, 38, 57]
    assert every_epoch.epoch(19) == pytest.approx(19 / 18.75)
    half = EvaluationSchedule(50, 600, 32, every_epochs=0.5)
    assert [s for s in range(51) if half.is_due(s)] == [10, 19, 29, 38, 47, 50]
    steps = EvaluationSchedule(50, 600, 32, every_steps=20)
    assert [s for s in range(51) if steps.is_due(s)] == [20, 40, 50]


def test_history_best_and_last_are_what_evaluate_reports(tfrecords, tmp_path, capsys):
    run = tmp_path / "run"
    train.main(_args(tfrecords, run, "--epochs", "3", "--eval_every_epochs", "1", "--moving_average_decay", "0.5"))
    out = capsys.readouterr().out
    rows = _history(run)
    assert [(r["step"], r["epoch"], r["num_images"]) for r in rows] == [
        ("4", "1.0000", "16"), ("8", "2.0000", "16"), ("12", "3.0000", "16")]
    assert "evaluation at step 8 (epoch 2.00) on validation" in out and "EMA weights" in out
    top1 = [float(r["top1"]) for r in rows]
    best = rows[top1.index(max(top1))]  # the first of equals
    summary = json.loads((run / train_eval.SUMMARY).read_text())
    assert (summary["best"]["step"], summary["last"]["step"], summary["evaluations"]) == (int(best["step"]), 12, 3)
    assert summary["best"]["checkpoint"] == f"best/ckpt-{best['step']}" and summary["split"] == "validation"
    assert set(summary["reported_by_papers"]) == {"best", "last"}
    assert f"best top-1 {float(best['top1']):.4f} at step {best['step']}" in out and "last" in out
    best_results = _evaluate(run / "best", tfrecords, tmp_path)
    assert best_results["step"] == int(best["step"]) and best_results["ema_weights"]
    _assert_row_is(best, best_results)
    _assert_row_is(rows[-1], _evaluate(run, tfrecords, tmp_path))
    assert _tensorboard_scalars(run / "train", "eval/top1") == {int(r["step"]): float(r["top1"]) for r in rows}


def test_best_checkpoint_outlives_the_latest_ones(tfrecords, tmp_path):
    run = tmp_path / "run"
    train.main(_args(tfrecords, run, "--max_number_of_steps", "6", "--save_interval_secs", "0",
                                   "--max_checkpoints_to_keep", "6"))
    config, prefixes = runs.load_run_config(str(run)), [str(run / f"ckpt-{s}") for s in (2, 4, 6)]
    for prefix, top1 in zip(prefixes, (0.5, 0.75, 0.6)):
        step = runs.checkpoint_step(prefix)
        row = {"step": step, "epoch": step / 4, "top1": top1, "top5": 1.0, "mean_per_class_accuracy": top1,
               "loss": 1.0, "num_images": 16}
        assert train_eval.record_evaluation(str(run), row, prefix, config) == (top1 != 0.6)
    assert train_eval.best_checkpoint_step(str(run)) == 4
    assert sorted(os.listdir(run / "best")) == ["checkpoint", "ckpt-4.data-00000-of-00001", "ckpt-4.index",
                                                "run_config.json"]
    expected = _evaluate(run / "ckpt-4", tfrecords, tmp_path)
    for name in os.listdir(run):  # the checkpoint manager deleting ckpt-4 leaves the best one whole
        if name.startswith("ckpt-4."):
            os.remove(run / name)
    assert _evaluate(run / "best", tfrecords, tmp_path)["top1"] == expected["top1"]
    summary = train_eval.eval_summary(str(run))
    assert (summary["best"]["top1"], summary["last"]["top1"]) == (0.75, 0.6)


@pytest.mark.slow
def test_killed_run_keeps_its_history_without_repeats(tfrecords, tmp_path):
    run = tmp_path / "killed"
    args = _args(tfrecords, run, "--max_number_of_steps", "16", "--eval_every_steps", "4", "--seed", "3")
    process = subprocess.Popen([sys.executable, LAUNCHER, "fgtf.train", *args],
                               env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    for line in process.stdout:  # killed just after the row of step 8: mid-run whatever the machine's speed
        if line.startswith("evaluation at step 8 "):
            process.send_signal(signal.SIGKILL)
            break
    process.wait()
    process.stdout.close()
    assert [r["step"] for r in _history(run)] == ["4", "8"]
    resumed = _run_train(args)
    assert "resumed from" in resumed.stdout and "evaluated 4 times" in resumed.stdout
    rows = _history(run)
    assert [r["step"] for r in rows] == ["4", "8", "12", "16"]
    # Stopped after the last checkpoint but before its row: the finished run evaluates it, once.
    lines = (run / train_eval.HISTORY).read_text().splitlines(keepends=True)
    (run / train_eval.HISTORY).write_text("".join(lines[:-1]))
    finished = _run_train(args)
    assert "already finished" in finished.stdout and "evaluation at step 16" in finished.stdout
    assert _history(run) == rows
    assert _run_train(args).stdout.count("evaluation at step") == 0


def test_evaluation_flags_are_checked(tfrecords, tmp_path, capsys):
    for extra, message in ((["--eval_every_epochs", "1", "--eval_every_steps", "2"], "at most one"),
                           (["--eval_every_steps", "2", "--eval_split", "test"], "unknown split"),
                           (["--eval_every_steps", "0"], "--eval_every_steps"),
                           (["--eval_every_steps", "2", "--strategy", "tpu", "--tpu", "x"], "eval_interval_secs")):
        with pytest.raises(SystemExit) as exit_info:
            train.main(_args(tfrecords, tmp_path / "bad", "--max_number_of_steps", "2", *extra))
        assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def _run_train(args):
    done = subprocess.run([sys.executable, LAUNCHER, "fgtf.train", *args], capture_output=True, text=True,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _tensorboard_scalars(log_dir, tag):
    import tensorflow as tf

    values = {}
    for name in os.listdir(log_dir):
        for event in tf.compat.v1.train.summary_iterator(str(log_dir / name)):
            for value in event.summary.value:
                if value.tag == tag:
                    values[event.step] = pytest.approx(float(tf.make_ndarray(value.tensor)), abs=1e-6)
    return values
