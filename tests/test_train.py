"""Training and evaluation machinery (fgtf.train, fgtf.evaluate, schedules,
scopes, evaluation during training) on a tiny backbone and a tiny synthetic dataset."""
import csv
import json
import os
import signal
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest

from fgtf import evaluate, plots, runs, train, train_eval, training
from fgtf.metrics import classification_metrics
from fgtf.models.layers import freeze_outside_scopes
from fgtf.train_eval import EvaluationSchedule
import tiny_models

LAUNCHER = tiny_models.LAUNCHER

pytestmark = pytest.mark.usefixtures("tiny_models_registered")


@pytest.fixture(scope="module")
def tfrecords(tmp_path_factory):
    return tiny_models.tiny_synthetic_tfrecords(tmp_path_factory.mktemp("tiny_synthetic"), classes=4,
                                                train_per_class=8, val_per_class=4, num_shards=2)


def _args(tfrecords, train_dir, *extra):
    return ["--dataset_dir", tfrecords, "--train_dir", str(train_dir), "--model_name", "tiny_net",
            "--train_image_size", "32", "--batch_size", "8", "--optimizer", "momentum",
            "--learning_rate", "0.05", "--log_every_n_steps", "2", "--weight_decay", "0", *extra]


def _run(module, args, env=None, **kwargs):
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    return subprocess.run([sys.executable, LAUNCHER, module, *args], env=environment, capture_output=True,
                          text=True, **kwargs)


def _final_weights(train_dir):
    config = runs.load_run_config(train_dir)
    model = runs.build_network(config)
    runs.restore_for_inference(model, runs.latest_checkpoint(str(train_dir)), use_ema=False)
    return [np.asarray(w) for w in model.weights]


def test_trainable_scopes_freeze_exactly_the_rest(tfrecords, tmp_path):
    model = tiny_models.TinyNet(classes=4, input_shape=(32, 32, 3), classifier_activation=None)
    kept = freeze_outside_scopes(model, "TinyNet/Logits")
    assert kept == ["Logits.Logits"]
    assert [w.path for w in model.trainable_weights] == ["Logits.Logits/kernel", "Logits.Logits/bias"]
    train_dir = tmp_path / "frozen"
    train.main(_args(tfrecords, train_dir, "--max_number_of_steps", "3", "--trainable_scopes", "Logits"))
    config = runs.load_run_config(str(train_dir))
    keras.utils.set_random_seed(0)  # the run's --seed: a fresh build is its starting point
    start = runs.build_network(config)
    trained = _final_weights(train_dir)
    changed = {w.path: not np.allclose(np.asarray(w), t) for w, t in zip(start.weights, trained)}
    assert changed == {"Conv2d_1a_3x3/kernel": False, "Conv2d_1a_3x3/bias": False, "Mixed_5b/kernel": False,
                       "Mixed_5b/bias": False, "Logits.Logits/kernel": True, "Logits.Logits/bias": True}


@pytest.mark.slow
def test_torch_style_recipe_trains_and_resumes_where_it_stopped(tfrecords, tmp_path, capsys):
    """SGD with Nesterov momentum, the classifier at 10x, PyTorch's coupled
    decay, a multistep drop, clipping and the weight EMA: a run stopped after
    2 steps and resumed ends as one that ran 4 steps straight."""
    recipe = ["--nesterov", "--learning_rate_multipliers", "Logits=10", "--weight_decay_mode", "coupled",
              "--weight_decay", "0.001", "--learning_rate_decay_type", "multistep", "--milestone_steps", "3",
              "--learning_rate_decay_factor", "0.1",
              "--clip_gradient_norm", "1", "--moving_average_decay", "0.9", "--save_interval_secs", "0"]
    train.main(_args(tfrecords, tmp_path / "straight", "--max_number_of_steps", "4", *recipe))
    out = capsys.readouterr().out
    assert "step 2/4" in out and "lr 0.05 " in out and "step 4/4" in out and "lr 0.005 " in out
    train.main(_args(tfrecords, tmp_path / "resumed", "--max_number_of_steps", "2", *recipe))
    train.main(_args(tfrecords, tmp_path / "resumed", "--max_number_of_steps", "4", *recipe))
    assert "resumed from" in capsys.readouterr().out
    for straight, resumed in zip(_final_weights(tmp_path / "straight"), _final_weights(tmp_path / "resumed")):
        np.testing.assert_allclose(resumed, straight, rtol=1e-5, atol=1e-6)
    averaged = evaluate.evaluate_checkpoint(str(tmp_path / "resumed"), tfrecords, batch_size=5,
                                            eval_dir=str(tmp_path / "eval"))
    assert averaged["ema_weights"]


def test_aux_logits_train_on_both_outputs_and_evaluate(tfrecords, tmp_path, capsys):
    """From 299 px an Inception-style network trains its aux classifier too
    (slim's 0.4 x its cross-entropy): each output gets the labels."""
    train.main(_args(tfrecords, tmp_path / "aux", "--model_name", "tiny_aux_net", "--train_image_size", "299",
                     "--max_number_of_steps", "2", "--trainable_scopes", "Logits"))
    out = capsys.readouterr().out
    assert "step 2/2" in out and "AuxLogits.Logits_loss" in out
    assert runs.load_run_config(str(tmp_path / "aux")).aux_logits
    results = evaluate.evaluate_checkpoint(str(tmp_path / "aux"), tfrecords, batch_size=8,
                                           eval_dir=str(tmp_path / "eval"))
    assert results["num_images"] == 16


@pytest.mark.slow
def test_drop_path_rate_reaches_the_swin_blocks(tfrecords, tmp_path):
    """CLE-ViT's drop path, linear over the blocks up to --drop_path_rate,
    recorded in the run (which evaluate rebuilds)."""
    train.main(_args(tfrecords, tmp_path / "swin", "--model_name", "tiny_swin", "--optimizer", "adamw",
                     "--learning_rate", "1e-3", "--drop_path_rate", "0.3", "--max_number_of_steps", "1"))
    config = runs.load_run_config(str(tmp_path / "swin"))
    assert config.drop_path_rate == 0.3
    rates = [layer.drop_path_rate for layer in runs.build_network(config).layers if "blocks" in layer.name]
    np.testing.assert_allclose(rates, [0.0, 0.1, 0.2, 0.3])


def test_train_then_evaluate_writes_results(tfrecords, tmp_path, capsys):
    train_dir = tmp_path / "run"
    train.main(_args(tfrecords, train_dir, "--max_number_of_steps", "4", "--moving_average_decay", "0.9"))
    out = capsys.readouterr().out
    assert "step 4/4" in out and "images/s" in out
    assert json.loads((train_dir / "train_done.json").read_text())["step"] == 4
    assert any(name.startswith("events") for name in os.listdir(train_dir / "train"))
    train.main(_args(tfrecords, train_dir, "--max_number_of_steps", "4"))
    assert "already finished" in capsys.readouterr().out
    evaluate.main(["--checkpoint_path", str(train_dir), "--dataset_dir", tfrecords, "--batch_size", "5"])
    assert "EMA weights" in capsys.readouterr().out
    results = json.loads((train_dir / "eval" / "eval_results.json").read_text())
    assert results["step"] == 4 and results["num_images"] == 16 and results["ema_weights"]
    assert 0 <= results["top1"] <= results["top5"] <= 1 and len(results["per_class_accuracy"]) == 4
    assert (train_dir / "eval" / "confusion_matrix.png").stat().st_size > 1000
    assert (train_dir / "eval" / "per_class_accuracy.csv").read_text().startswith("class,name,accuracy")


def test_library_calls_take_typed_settings(tfrecords, tmp_path, capsys):
    flags = train.build_parser().parse_args(["--dataset_dir", tfrecords, "--run_dir", str(tmp_path / "run")])
    from fgtf.train_config import (DataSettings, ModelSettings, OptimizationSettings, RunSettings,
                                   ScheduleSettings, TrainConfig)

    data, run = DataSettings(dataset_dir=tfrecords), RunSettings(run_dir=str(tmp_path / "run"))
    assert train.TrainConfig.from_flags(flags) == TrainConfig(data=data, run=run)
    settings = TrainConfig(data=DataSettings(dataset_dir=tfrecords, image_size=32), run=run,
                           model=ModelSettings(model="tiny_net"),
                           optimization=OptimizationSettings(optimizer="momentum", weight_decay=0),
                           schedule=ScheduleSettings(learning_rate=0.05, batch_size=8, max_number_of_steps=2))
    assert set(training.train(settings)) >= {"loss", "accuracy"}
    recorded = runs.load_run_config(str(tmp_path / "run"))
    assert recorded.total_steps == 2
    # run_config.json keeps the whole config, read back as it ran (the pipeline left out is the network's)
    assert recorded.training_config() == settings.replace(data__preprocessing=recorded.preprocessing)
    results = evaluate.evaluate_checkpoint(str(tmp_path / "run"), tfrecords, batch_size=5,
                                           eval_dir=str(tmp_path / "eval"))
    assert results["step"] == 2 and results["num_images"] == 16 and results["model_name"] == "tiny_net"
    assert "training steps 0 -> 2" in capsys.readouterr().out


def test_eval_metrics_hand_computed():
    logits = np.array([[3.0, 1.0, 0.0], [0.0, 2.0, 1.0], [1.0, 0.0, 2.0], [2.0, 1.0, 0.0]])
    labels = np.array([0, 2, 2, 1])
    metrics = classification_metrics(logits, labels, 3)
    assert metrics["top1"] == pytest.approx(0.5)
    assert metrics["top5"] == 1.0
    assert metrics["per_class_accuracy"] == [1.0, 0.0, 0.5]
    assert metrics["mean_per_class_accuracy"] == pytest.approx(0.5)
    log_softmax = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    assert metrics["loss"] == pytest.approx(-log_softmax[np.arange(4), labels].mean())
    np.testing.assert_array_equal(metrics["confusion_matrix"], [[1, 0, 0], [1, 0, 0], [0, 1, 1]])


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_checkpoint(tfrecords, tmp_path, capsys):
    train_dir = tmp_path / "diverge"
    train.main(_args(tfrecords, train_dir, "--max_number_of_steps", "2"))
    with pytest.raises(SystemExit) as exit_info:
        train.main(_args(tfrecords, train_dir, "--max_number_of_steps", "40", "--learning_rate", "1e30",
                         "--learning_rate_decay_type", "fixed", "--save_interval_secs", "0"))
    assert exit_info.value.code == train.EXIT_DIVERGED
    assert "the loss became" in capsys.readouterr().err
    assert runs.checkpoint_step(runs.latest_checkpoint(str(train_dir))) >= 2
    assert np.all(np.isfinite(np.concatenate([w.ravel() for w in _final_weights(train_dir)])))


def test_bad_arguments_exit_2(tfrecords, tmp_path, capsys):
    for extra, message in ((["--max_number_of_steps", "2", "--epochs", "1"], "exactly one"),
                           (["--max_number_of_steps", "2", "--model_name", "nonet"], "unknown model"),
                           (["--max_number_of_steps", "2", "--batch_size", "1000"], "larger than")):
        with pytest.raises(SystemExit) as exit_info:
            train.main(_args(tfrecords, tmp_path / "bad", *extra))
        assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_killed_run_resumes_to_the_same_end(tfrecords, tmp_path):
    steps = ["--max_number_of_steps", "24", "--save_interval_secs", "0", "--seed", "3"]
    reference = tmp_path / "uninterrupted"
    assert _run("fgtf.train", _args(tfrecords, reference, *steps)).returncode == 0
    killed = tmp_path / "killed"
    # Kill on the progress line of step 6: the process is then mid-run whatever the machine's speed
    # (a timed kill landed after the last step on a fast machine).
    process = subprocess.Popen([sys.executable, LAUNCHER, "fgtf.train", *_args(tfrecords, killed, *steps)],
                               env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    for line in process.stdout:
        if line.startswith("step 6/24"):
            process.send_signal(signal.SIGKILL)
            break
    process.wait()
    process.stdout.close()
    step_at_kill = runs.checkpoint_step(runs.latest_checkpoint(str(killed)))
    assert 0 < step_at_kill < 24, "the kill should land mid-run"
    resumed = _run("fgtf.train", _args(tfrecords, killed, *steps))
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed from" in resumed.stdout and "step 24/24" in resumed.stdout
    for a, b in zip(_final_weights(reference), _final_weights(killed)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_two_mirrored_replicas_match_one_replica(tfrecords, tmp_path):
    # Batches of 6 (3 a replica): the last evaluation batch, of 16 images, gives one replica 1 and the other none.
    steps = ["--max_number_of_steps", "3", "--seed", "1", "--batch_size", "6", "--eval_every_steps", "2"]
    odd = _run("fgtf.train", _args(tfrecords, tmp_path / "odd", *steps, "--strategy", "mirrored", "--eval_batch_size",
                                   "5"), env={"FGTF_LOGICAL_CPUS": "2"})
    assert odd.returncode == 2 and "--eval_batch_size 5 does not split evenly over the 2 replicas" in odd.stderr
    one = _run("fgtf.train", _args(tfrecords, tmp_path / "one", *steps))
    assert one.returncode == 0, one.stderr
    two = _run("fgtf.train", _args(tfrecords, tmp_path / "two", *steps, "--strategy", "mirrored"),
               env={"FGTF_LOGICAL_CPUS": "2"})
    assert two.returncode == 0, two.stderr
    assert "on 2 replica(s)" in two.stdout
    for a, b in zip(_final_weights(tmp_path / "one"), _final_weights(tmp_path / "two")):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    histories = [(tmp_path / run / "eval_history.csv").read_text().splitlines() for run in ("one", "two")]
    assert [line.split(",")[:3] for line in histories[0]] == [line.split(",")[:3] for line in histories[1]]
    assert [line.split(",")[-1] for line in histories[1]] == ["num_images", "16", "16"]


def test_multi_worker_run_on_localhost(tfrecords, tmp_path):
    ports = [_free_port(), _free_port()]
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    processes = []
    for index in range(2):
        config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        processes.append(subprocess.Popen(
            [sys.executable, LAUNCHER, "fgtf.train",
             *_args(tfrecords, tmp_path / "mw", "--max_number_of_steps", "3", "--strategy", "multi_worker",
                    "--eval_every_steps", "2")],
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_CONFIG": config},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = [p.communicate(timeout=600) for p in processes]
    for process, (stdout, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stderr[-3000:]
    assert "step 3/3" in outputs[0][0]
    assert runs.checkpoint_step(runs.latest_checkpoint(str(tmp_path / "mw"))) == 3
    assert not any(name.startswith(".worker") for name in os.listdir(tmp_path / "mw"))
    # each worker predicts the images of its own shard; the chief's row counts them all
    history = (tmp_path / "mw" / "eval_history.csv").read_text().splitlines()
    assert [line.split(",")[0] + "," + line.split(",")[-1] for line in history[1:]] == ["2,16", "3,16"]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_evaluation_schedule_counts_epochs_exactly():
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
    plots.eval_history_png({"seed 0": rows}, str(tmp_path / "history.png"), chance=0.25)
    assert (tmp_path / "history.png").stat().st_size > 1000


@pytest.mark.slow
def test_ten_view_evaluations_are_what_evaluate_reports(tfrecords, tmp_path, capsys):
    # SAM-Bilinear normalises its mask over the batch: the same batches (8 a replica) give the same numbers.
    run = tmp_path / "sam"
    train.main(_args(tfrecords, run, "--max_number_of_steps", "4", "--eval_every_steps", "2", "--head", "sam",
                     "--preprocessing", "sam", "--eval_views", "10"))
    assert "on validation, 10 views summed: top-1" in capsys.readouterr().out
    rows = _history(run)
    for row, checkpoint in zip(rows, (run / "ckpt-2", run)):
        _assert_row_is(row, _evaluate(checkpoint, tfrecords, tmp_path, batch_size=8, eval_views=10))
    assert json.loads((run / train_eval.SUMMARY).read_text())["eval_views"] == 10


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
    best = train_eval.eval_summary(str(run))["best"]  # kept through the kill: the best of all four rows
    assert best["top1"] == max(float(r["top1"]) for r in rows)
    assert (run / "best" / f"ckpt-{best['step']}.index").exists()
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
                           (["--eval_every_steps", "2", "--eval_views", "10"], "SAM's ten test views"),
                           (["--eval_every_steps", "2", "--strategy", "tpu", "--tpu", "x"], "eval_interval_secs")):
        with pytest.raises(SystemExit) as exit_info:
            train.main(_args(tfrecords, tmp_path / "bad", "--max_number_of_steps", "2", *extra))
        assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def _run_train(args):
    done = _run("fgtf.train", args)
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


def _history(run_dir):
    with open(os.path.join(run_dir, train_eval.HISTORY), newline="") as handle:
        return list(csv.DictReader(handle))


def _evaluate(checkpoint, tfrecords, tmp_path, batch_size=5, **options):
    return evaluate.evaluate_checkpoint(str(checkpoint), tfrecords, batch_size=batch_size,
                                        eval_dir=str(tmp_path / "eval"), **options)


def _assert_row_is(row, results):
    assert float(row["top1"]) == pytest.approx(results["top1"], abs=1e-6)
    assert float(row["top5"]) == pytest.approx(results["top5"], abs=1e-6)
    assert float(row["mean_per_class_accuracy"]) == pytest.approx(results["mean_per_class_accuracy"], abs=1e-6)
    assert float(row["loss"]) == pytest.approx(results["loss"], rel=1e-4)
    assert int(row["num_images"]) == results["num_images"]
