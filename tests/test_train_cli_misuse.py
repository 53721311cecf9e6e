"""fgtf.train and fgtf.evaluate from the command line: run folders as the unit
of work (the two-stage fine-tuning recipe), shards without a manifest, and
misuse answered by one sentence and exit 2 with the run folder untouched."""
import io
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from fgtf import evaluate, runs, train
import tiny_models
from cli_helpers import REPO

LAUNCHER = tiny_models.LAUNCHER

pytestmark = pytest.mark.usefixtures("tiny_models_registered")


@pytest.fixture(scope="module")
def tfrecords(tmp_path_factory):
    return tiny_models.tiny_synthetic_tfrecords(tmp_path_factory.mktemp("tiny4"), classes=4,
                                                train_per_class=8, val_per_class=2, num_shards=2)


@pytest.fixture(scope="module")
def stage1(tfrecords, tmp_path_factory):
    """Stage 1 of the recipe: the classifier only, with an EMA of the weights."""
    run_dir = tmp_path_factory.mktemp("runs") / "stage1"
    train.main(_args(tfrecords, run_dir, "--max_number_of_steps", "3", "--trainable_scopes", "TinyNet/Logits",
                     "--moving_average_decay", "0.5"))
    return run_dir


def _args(dataset_dir, run_dir, *extra):
    return ["--dataset_dir", str(dataset_dir), "--run_dir", str(run_dir), "--model", "tiny_net",
            "--image_size", "32", "--batch_size", "8", "--optimizer", "momentum", "--learning_rate", "0.05",
            "--log_every_n_steps", "1", "--weight_decay", "0", *extra]


def _refused(capsys, function, argv, *words):
    """Calls a CLI main that must refuse: exit 2 and one error line naming `words` on stderr (after
    argparse's usage for a flag it rejects), no traceback."""
    with pytest.raises(SystemExit) as exit_info:
        function(argv)
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2, err
    *usage, message = err.splitlines()
    assert "Traceback" not in err and (not usage or usage[0].startswith("usage:")), err
    for word in words:
        assert word in message, err
    return message


def _snapshot(folder):
    folder = str(folder)
    if not os.path.exists(folder):
        return None
    return {os.path.relpath(os.path.join(root, name), folder): open(os.path.join(root, name), "rb").read()
            for root, _, names in os.walk(folder) for name in names}


def _weights(run_dir, use_ema=False):
    model = runs.build_network(runs.load_run_config(str(run_dir)))
    runs.restore_for_inference(model, runs.latest_checkpoint(str(run_dir)), use_ema=use_ema)
    return {w.path: np.asarray(w) for w in model.weights}


def test_two_stage_recipe(stage1, tfrecords, tmp_path, capsys):
    capsys.readouterr()
    stage2 = tmp_path / "stage2"
    # Another optimizer than stage 1's: the new run must not restore its slots or step.
    train.main(_args(tfrecords, stage2, "--checkpoint", str(stage1), "--learning_rate", "0.005",
                     "--optimizer", "rmsprop", "--max_number_of_steps", "2"))
    out = capsys.readouterr().out
    assert f"initialised from {stage1}: tiny_net, 32 px, 4 classes, EMA weights (fgtf run: " in out
    assert "training steps 0 -> 2" in out and "step 2/2" in out
    assert runs.checkpoint_step(runs.latest_checkpoint(str(stage2))) == 2
    assert runs.load_run_config(str(stage2)).optimizer == "rmsprop"
    evaluate.main(["--checkpoint", str(stage2), "--dataset_dir", tfrecords, "--split", "val"])
    out = capsys.readouterr().out
    assert "tiny_net, 32 px, 4 classes, raw weights (fgtf run: " in out
    assert "ckpt-2); inception preprocessing; image size, preprocessing and classes from its run_config.json" in out
    results = json.loads((stage2 / "eval" / "eval_results.json").read_text())
    assert results["image_size"] == 32 and results["split"] == "validation" and results["num_classes"] == 4
    assert results["checkpoint"].endswith("ckpt-2") and results["ema_weights"] is False


def test_new_run_takes_ema_or_raw_weights_and_starts_at_step_0(stage1, tfrecords, tmp_path, capsys):
    ema, raw = _weights(stage1, use_ema=True), _weights(stage1)
    assert not np.allclose(ema["Logits.Logits/kernel"], raw["Logits.Logits/kernel"])
    for flag, expected in (([], ema), (["--no_ema"], raw)):
        run_dir = tmp_path / f"from_stage1{len(flag)}"
        # A learning rate of ~0 leaves the starting weights in the new run's first checkpoint.
        train.main(_args(tfrecords, run_dir, "--checkpoint", str(stage1), "--max_number_of_steps", "1",
                         "--learning_rate", "1e-30", "--learning_rate_decay_type", "fixed", *flag))
        started = _weights(run_dir)
        for path, value in expected.items():
            np.testing.assert_allclose(started[path], value, rtol=1e-6, atol=1e-7, err_msg=path)
        assert runs.checkpoint_step(runs.latest_checkpoint(str(run_dir))) == 1


def test_exclude_scopes_into_another_class_count(tfrecords, tmp_path, capsys):
    six = tmp_path / "six_classes"
    train.main(_args(tfrecords, six, "--num_classes", "6", "--max_number_of_steps", "1"))
    four = tmp_path / "four_classes"
    _refused(capsys, train.main, _args(tfrecords, four, "--checkpoint", str(six), "--max_number_of_steps", "1"),
             "Logits.Logits", "--checkpoint_exclude_scopes")
    assert not four.exists()
    train.main(_args(tfrecords, four, "--checkpoint", str(six), "--checkpoint_exclude_scopes", "TinyNet/Logits",
                     "--max_number_of_steps", "1", "--learning_rate", "1e-30",
                     "--learning_rate_decay_type", "fixed"))
    source, started = _weights(six), _weights(four)
    np.testing.assert_allclose(started["Mixed_5b/kernel"], source["Mixed_5b/kernel"], rtol=1e-6)
    assert started["Logits.Logits/kernel"].shape == (16, 4)
    # A 6-class run on data whose labels cover 4 of its classes is scored, and says so.
    evaluate.main(["--checkpoint", str(six), "--dataset_dir", tfrecords])
    assert "its labels cover 4 of the network's 6 classes" in capsys.readouterr().out


def test_exclude_scopes_match_by_substring_as_the_cvpr18_trainer(tfrecords, tmp_path, capsys):
    """train.sh's CHECKPOINT_EXCLUDE_SCOPES=Logits leaves out AuxLogits too
    (train.py: `exclusion in var.op.name`); --scope_matching prefix does not."""
    six = tmp_path / "six_classes"
    aux = ["--model", "tiny_aux_net", "--image_size", "299", "--max_number_of_steps", "1"]
    train.main(_args(tfrecords, six, *aux, "--num_classes", "6"))
    _refused(capsys, train.main, _args(tfrecords, tmp_path / "prefix", *aux, "--checkpoint", str(six),
                                       "--checkpoint_exclude_scopes", "Logits", "--scope_matching", "prefix"),
             "AuxLogits.Logits")
    four = tmp_path / "four_classes"
    train.main(_args(tfrecords, four, *aux, "--checkpoint", str(six), "--checkpoint_exclude_scopes", "Logits"))
    assert _weights(four)["AuxLogits.Logits/kernel"].shape == (8, 4)


def test_a_head_starts_from_a_plain_run_backbone(tfrecords, tmp_path):
    """As from an ImageNet checkpoint: the plain run's backbone is loaded, the head's own layers are new."""
    plain = tmp_path / "plain"
    train.main(_args(tfrecords, plain, "--max_number_of_steps", "1"))
    sef = tmp_path / "sef"
    train.main(_args(tfrecords, sef, "--checkpoint", str(plain), "--checkpoint_exclude_scopes", "TinyNet/Logits",
                     "--head", "sef", "--max_number_of_steps", "1", "--learning_rate", "1e-30",
                     "--learning_rate_decay_type", "fixed"))
    source, started = _weights(plain), _weights(sef)
    np.testing.assert_allclose(started["Mixed_5b/kernel"], source["Mixed_5b/kernel"], rtol=1e-6)
    assert "Logits.Logits/kernel" not in started and len(started) > len(source) - 2


def test_a_run_of_another_network_is_refused(stage1, tfrecords, tmp_path, capsys):
    other = tmp_path / "small_cnn_from_tiny_net"
    _refused(capsys, train.main, _args(tfrecords, other, "--model", "small_cnn", "--checkpoint", str(stage1),
                                       "--max_number_of_steps", "1"),
             "is a run of tiny_net, not of --model small_cnn")
    assert not other.exists()


@pytest.mark.parametrize("extra, words", [
    (["--model", "small_cnn"], ["model_name tiny_net -> small_cnn"]),
    (["--optimizer", "adam"], ["optimizer momentum -> adam"]),
    (["--image_size", "24", "--batch_size", "4"], ["image_size 32 -> 24", "batch_size 8 -> 4"]),
    (["--num_classes", "5"], ["num_classes 4 -> 5"]),
])
def test_continuing_a_run_with_other_settings_is_refused(stage1, tfrecords, capsys, extra, words):
    before = _snapshot(stage1)
    _refused(capsys, train.main, _args(tfrecords, stage1, "--max_number_of_steps", "5", *extra),
             "other settings", *words)
    assert _snapshot(stage1) == before


@pytest.mark.parametrize("extra, words", [
    (["--max_number_of_steps", "0"], ["--max_number_of_steps", "at least 1"]),
    (["--max_number_of_steps", "2", "--sef_groups", "0"], ["--sef_groups"]),
    (["--max_number_of_steps", "2", "--max_checkpoints_to_keep", "0"], ["--max_checkpoints_to_keep"]),
    (["--max_number_of_steps", "2", "--moving_average_decay", "1.5"], ["--moving_average_decay", "[0, 1)"]),
    (["--max_number_of_steps", "2", "--strategy", "tpu"], ["--tpu"]),
    (["--max_number_of_steps", "2", "--min_crop_area", "0"], ["--min_crop_area", "(0, 1]"]),
    (["--max_number_of_steps", "2", "--num_classes", "3"], ["labels up to 3", "--num_classes 4"]),
    (["--max_number_of_steps", "2", "--image_size", "4"], ["--image_size 4 is too small for tiny_net"]),
    (["--max_number_of_steps", "2", "--model", "tiny_swin", "--image_size", "40"],
     ["--image_size 40 does not suit tiny_swin", "not a multiple of the 4x4 window"]),
    (["--max_number_of_steps", "2", "--checkpoint", "nowhere/run"], ["nowhere/run"]),
    (["--max_number_of_steps", "2", "--optimizer", "adam", "--nesterov"], ["--nesterov", "adam"]),
    (["--max_number_of_steps", "2", "--learning_rate_decay_type", "multistep"], ["--milestone_epochs"]),
    (["--max_number_of_steps", "2", "--milestone_steps", "3"], ["multistep"]),
    (["--max_number_of_steps", "2", "--milestone_steps", "3,2"], ["--milestone_steps", "increase"]),
    (["--max_number_of_steps", "2", "--num_epochs_per_decay", "2", "--num_steps_per_decay", "3"],
     ["--num_steps_per_decay", "not allowed with"]),
    (["--max_number_of_steps", "2", "--learning_rate_multipliers", "Logits"], ["SCOPE=FACTOR"]),
    (["--max_number_of_steps", "2", "--learning_rate_multipliers", "Mixed_9z=10"], ["Mixed_9z names no trained"]),
    (["--max_number_of_steps", "2", "--trainable_scopes", "Logits", "--learning_rate_multipliers", "Mixed_5b=2"],
     ["Mixed_5b names no trained"]),
    (["--max_number_of_steps", "2", "--drop_path_rate", "0.5"], ["--drop_path_rate", "tiny_net"]),
])
def test_train_misuse_exits_2_and_writes_nothing(tfrecords, tmp_path, capsys, extra, words):
    run_dir = tmp_path / "never"
    _refused(capsys, train.main, _args(tfrecords, run_dir, *extra), *words)
    assert not run_dir.exists()


def test_original_tool_shards_without_manifest(tfrecords, tmp_path, capsys):
    # The TF1 tool wrote its shards beside the images, with no manifest.
    dataset = tmp_path / "cub_like"
    shutil.copytree(os.path.dirname(tfrecords) + "/raw", dataset)
    for name in os.listdir(tfrecords):
        if name.endswith(".tfrecord"):
            shutil.copy(os.path.join(tfrecords, name), dataset)
    train.main(_args(dataset, tmp_path / "run", "--max_number_of_steps", "2"))
    assert runs.load_run_config(str(tmp_path / "run")).num_train_examples == 32
    evaluate.main(["--checkpoint", str(tmp_path / "run"), "--dataset_dir", str(dataset)])
    assert json.loads((tmp_path / "run" / "eval" / "eval_results.json").read_text())["num_images"] == 8
    # The dataset folder whose tfrecords/ subfolder holds the shards works too.
    train.main(_args(os.path.dirname(tfrecords), tmp_path / "run2", "--max_number_of_steps", "1"))


def test_shard_listed_in_the_manifest_but_missing(tfrecords, tmp_path, capsys):
    shards = tmp_path / "shards"
    shutil.copytree(tfrecords, shards)
    os.remove(shards / "train_00001-of-00002.tfrecord")
    _refused(capsys, train.main, _args(shards, tmp_path / "run", "--max_number_of_steps", "1"),
             "train_00001-of-00002.tfrecord", "missing", "tfrecord_tools.verify")
    assert not (tmp_path / "run").exists()


def test_corrupt_record_names_shard_and_record(tfrecords, tmp_path, capsys):
    import tensorflow as tf

    from tfrecord_tools.example import encode_example

    shards = tmp_path / "shards"
    shutil.copytree(tfrecords, shards)
    os.remove(shards / "manifest.json")
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(buffer, format="JPEG")
    path = str(shards / "train_00000-of-00002.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        for number in range(16):
            writer.write(encode_example(b"\xff\xd8 not a jpeg" if number == 2 else buffer.getvalue(),
                                        number % 4, 40, 40))
    run_dir = tmp_path / "run"
    _refused(capsys, train.main, _args(shards, run_dir, "--max_number_of_steps", "4"),
             f"record 2 of shard {path}", "python -m tfrecord_tools.verify", "--skip_bad_records")
    assert not run_dir.exists()
    train.main(_args(shards, run_dir, "--max_number_of_steps", "2", "--skip_bad_records"))
    assert runs.checkpoint_step(runs.latest_checkpoint(str(run_dir))) == 2


def test_evaluate_misuse(stage1, tfrecords, tmp_path, capsys):
    six = tiny_models.tiny_synthetic_tfrecords(tmp_path, classes=6, train_per_class=1, val_per_class=1,
                                               num_shards=1)
    before = _snapshot(stage1)
    _refused(capsys, evaluate.main, ["--checkpoint", str(stage1), "--dataset_dir", six],
             "labels up to 5", "4 classes")
    _refused(capsys, evaluate.main, ["--checkpoint", str(stage1), "--dataset_dir", tfrecords, "--split", "test"],
             "unknown split")
    _refused(capsys, evaluate.main, ["--checkpoint", str(tmp_path / "no_run"), "--dataset_dir", tfrecords,
                                     "--eval_interval_secs", "1"], "does not exist")
    assert _snapshot(stage1) == before
    empty = tmp_path / "not_started"
    empty.mkdir()
    evaluate.main(["--checkpoint", str(empty), "--dataset_dir", tfrecords, "--eval_interval_secs", "0.1",
                   "--timeout_secs", "0.2"])
    assert "waiting for the first checkpoint" in capsys.readouterr().out


@pytest.mark.parametrize("module", ["fgtf.train", "fgtf.evaluate"])
def test_help_imports_no_tensorflow(module):
    code = (f"import sys, io, contextlib, {module} as m\n"
            "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
            "    try:\n        m.main(['--help'])\n    except SystemExit:\n        pass\n"
            "assert '(default:' in out.getvalue(), out.getvalue()\n"
            "print('tensorflow' in sys.modules, 'keras' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": REPO})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"] and not result.stderr


@pytest.mark.slow
def test_mixed_precision_trains(tfrecords, tmp_path):
    result = subprocess.run([sys.executable, LAUNCHER, "fgtf.train",
                             *_args(tfrecords, tmp_path / "mp", "--max_number_of_steps", "2", "--mixed_precision")],
                            capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "step 2/2" in result.stdout and "top5" in result.stdout
