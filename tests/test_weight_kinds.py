"""Every command that takes weights (train, evaluate, extract_features,
visualize_attention, checkpoints convert, simtrans pretrain) accepts every kind
of --checkpoint through the one loader of fgtf.checkpoints: a TF-Slim
checkpoint, a Keras .weights.h5, an fgtf run folder (whose image size and
classes it takes) and a SavedModel (extract_features uses it; the others
refuse it in one sentence), and prints one line saying what it loaded.
Misuse (another network's weights, a missing file) is exit 2, one line,
nothing written."""
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import tiny_models
from fgtf import checkpoints, evaluate, extract_features, train, visualize_attention
from fgtf.models import build_model
from fgtf.models.layers import slim_variable_name
from fgtf.checkpoints.__main__ import main as checkpoints_command
from fgtf.simtrans.__main__ import main as simtrans_command

pytestmark = pytest.mark.usefixtures("tiny_models_registered")
RUN_SIZE = 40  # not tiny_net's own 32 px, so a command that takes the run's size shows it


def write_slim_checkpoint(model, prefix, ema_offset=None):
    """A TF-Slim checkpoint holding the weights of the Keras `model` under
    their slim names; with `ema_offset`, ExponentialMovingAverage shadows that
    differ from the weights by it. Returns the prefix."""
    values = {}
    for layer in model.layers:
        for weight in layer.weights:
            name = slim_variable_name(model.name, layer.name, weight.name)
            values[name] = np.asarray(weight)
            if ema_offset is not None:
                values[name + checkpoints.EMA_SUFFIX] = np.asarray(weight) + ema_offset
    names = sorted(values)
    tf.raw_ops.SaveV2(prefix=tf.constant(str(prefix)), tensor_names=tf.constant(names),
                      shape_and_slices=tf.constant([""] * len(names)),
                      tensors=[tf.constant(np.asarray(values[n], np.float32)) for n in names])
    return str(prefix)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """4-class synthetic data (raw images and shards) and tiny_net weights of every kind."""
    root = tmp_path_factory.mktemp("kinds")
    tfrecords = tiny_models.tiny_synthetic_tfrecords(root, classes=4, train_per_class=4, val_per_class=2,
                                                     num_shards=1)
    keras.utils.set_random_seed(0)
    model = tiny_models.TinyNet(classes=4, classifier_activation=None)
    weights = str(root / "tiny.weights.h5")
    checkpoints.save_keras_weights(model, weights, "tiny_net", 4, False)
    other = tiny_models.TinyNet(classes=4, classifier_activation=None, name="OtherNet")
    foreign = build_model("small_cnn", classes=2, classifier_activation=None, input_shape=(32, 32, 3))
    foreign_weights = str(root / "small_cnn.weights.h5")
    checkpoints.save_keras_weights(foreign, foreign_weights, "small_cnn", 2, False)
    run = str(root / "run")
    train.main(["--dataset_dir", tfrecords, "--run_dir", run, "--model", "tiny_net", "--image_size",
                str(RUN_SIZE), "--batch_size", "8", "--max_number_of_steps", "1", "--moving_average_decay", "0.5"])

    saved_model = _exported_saved_model(root / "exported", image_size=24)
    features_only = str(root / "hub")
    tf.saved_model.save(_Exported(), features_only)
    raw = str(root / "raw")
    image = next(os.path.join(folder, name) for folder, _, names in os.walk(raw) for name in sorted(names)
                 if name.endswith(".jpg"))
    return {"tfrecords": tfrecords, "raw": raw, "image": image, "run": run, "saved_model": saved_model,
            "features_only_saved_model": features_only,
            "keras": weights, "slim": write_slim_checkpoint(model, root / "tiny.ckpt", ema_offset=0.1),
            "other_slim": write_slim_checkpoint(other, root / "other.ckpt"), "foreign_keras": foreign_weights}


class _Exported(tf.Module):
    """A SavedModel as python -m fgtf.export writes one: [0, 1] images in, features from calling it, logits
    (4 classes) from its `logits` signature."""

    def __init__(self):
        super().__init__()
        self.kernel = tf.Variable(np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec((None, None, None, 3), tf.float32, name="images")])
    def __call__(self, images):
        return tf.reduce_mean(images, axis=[1, 2])

    @tf.function(input_signature=[tf.TensorSpec((None, None, None, 3), tf.float32, name="images")])
    def logits(self, images):
        return {"logits": tf.matmul(self(images), self.kernel)}


def _exported_saved_model(folder, image_size):
    """`folder`/saved_model with a `logits` signature and `folder`/model_card.json saying its input size."""
    import json

    module = _Exported()
    tf.saved_model.save(module, str(folder / "saved_model"), signatures={"logits": module.logits})
    (folder / "model_card.json").write_text(json.dumps({"input": {"shape": [None, image_size, image_size, 3]}}))
    return str(folder / "saved_model")


def _command(name, world, checkpoint, out, model=None, image_size=None):
    """(main, argv) of command `name` reading weights `checkpoint` and writing under `out`."""
    model_flag = ["--model", model] if model else []
    flags = model_flag + (["--image_size", str(image_size)] if image_size else [])
    if name == "train":
        return train.main, ["--dataset_dir", world["tfrecords"], "--run_dir", str(out / "run"), "--checkpoint",
                            checkpoint, "--batch_size", "8", "--max_number_of_steps", "1", *flags]
    if name == "evaluate":
        return evaluate.main, ["--checkpoint", checkpoint, "--dataset_dir", world["tfrecords"], "--out",
                               str(out / "eval"), *flags]
    if name == "extract_features":
        return extract_features.main, ["--dataset", "synthetic", "--dataset_dir", world["raw"], "--checkpoint",
                                       checkpoint, "--out", str(out / "features"), "--splits", "val", *flags]
    if name == "visualize_attention":
        return visualize_attention.main, ["--checkpoint", checkpoint, "--images", world["image"], "--out",
                                          str(out / "attention"), *flags]
    if name == "checkpoints convert":
        return checkpoints_command, ["convert", "--checkpoint", checkpoint, "--out", str(out / "c.weights.h5"),
                                  *model_flag]
    assert name == "simtrans pretrain"
    return simtrans_command, ["pretrain", "--dataset_dir", world["raw"], "--run_dir", str(out / "simtrans"),
                           "--checkpoint", checkpoint, "--novel_classes", "3", "--epochs", "1", "--batch_size", "4",
                           *flags]


COMMANDS = ["train", "evaluate", "extract_features", "visualize_attention", "checkpoints convert",
            "simtrans pretrain"]
# the line each command starts what it loaded with (`initialised from`, ...), before describe()'s text
LOADED = {"train": "initialised from {}: ", "evaluate": "evaluating {} on the validation split",
          "extract_features": "{}: ", "visualize_attention": "{}: ", "checkpoints convert": "{}: ",
          "simtrans pretrain": "backbone initialised from {}: "}
# the size each kind runs at: tiny_net's own, the run's, the exported SavedModel's model card's
SIZES = {"slim": 32, "keras": 32, "run": RUN_SIZE, "saved_model": 24}
# the commands a SavedModel serves (its features, its logits signature); the others need the network's layers
SAVED_MODEL_COMMANDS = ("extract_features", "evaluate")


@pytest.mark.parametrize("kind", ["slim", "keras", "run", "saved_model"])
@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_takes_every_kind_and_says_what_it_loaded(world, command, kind, tmp_path, capsys):
    checkpoint = world[kind]
    # a slim checkpoint does not name its network; the others do (a run also gives its image size)
    model = "tiny_net" if kind == "slim" else None
    size = None
    if command in ("train", "simtrans pretrain") and kind != "run":
        model, size = "tiny_net", 32
    main, argv = _command(command, world, checkpoint, tmp_path, model=model, image_size=size)
    if kind == "saved_model" and command not in SAVED_MODEL_COMMANDS:
        assert f"{checkpoint} is a SavedModel, an opaque graph" in _refused(capsys, main, argv)
        assert os.listdir(tmp_path) == []
        return
    main(argv)
    printed = capsys.readouterr().out
    kind_name = checkpoints.KIND_NAMES[kind]
    loaded = [line for line in printed.splitlines() if line.startswith(LOADED[command].format(checkpoint))]
    assert len(loaded) == 1, printed
    line = loaded[0]
    network = "tiny_net" if kind != "saved_model" else "saved_model"
    assert f"{network}, {SIZES[kind]} px" in line and f"({kind_name}: " in line, line
    if kind == "saved_model" and command == "evaluate":
        assert "4 classes" in line, line
    if kind == "run":
        assert "EMA weights" in line and "from its run_config.json" in line, line
        # convert writes a file of the run's network and classes; the other commands run it at the run's size
        assert ("model and classes" if command == "checkpoints convert" else "image size") in line, line
        if command in ("evaluate", "visualize_attention", "checkpoints convert"):
            assert "4 classes" in line, line
    if kind == "slim":
        assert "EMA weights" in line, line  # the checkpoint's shadows
    assert os.listdir(tmp_path), "the command wrote nothing"


@pytest.mark.parametrize("command", COMMANDS)
def test_another_networks_weights_and_missing_files_exit_2_writing_nothing(world, command, tmp_path, capsys):
    cases = [(world["foreign_keras"], "tiny_net", ("small_cnn", "not --model tiny_net") if command not in (
                  "train", "simtrans pretrain") else ("SmallCNN", "not TinyNet")),
             (world["other_slim"], "tiny_net", ("does not fit model TinyNet", "OtherNet/")),
             (str(tmp_path / "missing.ckpt"), "tiny_net", ("missing.ckpt not found",))]
    for checkpoint, model, words in cases:
        main, argv = _command(command, world, checkpoint, tmp_path / "out", model=model,
                              image_size=32 if command in ("train", "simtrans pretrain") else None)
        message = _refused(capsys, main, argv)
        assert all(word in message for word in words), (checkpoint, message)
        assert not (tmp_path / "out").exists()


def test_a_saved_model_without_logits_is_no_classifier_to_evaluate(world, tmp_path, capsys):
    main, argv = _command("evaluate", world, world["features_only_saved_model"], tmp_path / "out")
    assert "is a SavedModel without a classifier" in _refused(capsys, main, argv)
    assert not (tmp_path / "out").exists()


def _refused(capsys, main, argv):
    """Runs a CLI main that must refuse: exit 2, one error line (after argparse's usage for a flag it
    rejects), no traceback; returns the line."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2, err
    *usage, message = err.splitlines()
    assert "Traceback" not in err and all(line.startswith(("usage:", " ")) for line in usage), err
    return message


@pytest.fixture(scope="module")
def torchvision_resnet18(tmp_path_factory):
    """A torchvision resnet18 state dict as torchvision saves it (1000-class fc), deterministic weights."""
    from test_models_resnet import _listing, torch_weights
    from pth_writer import write_pth

    path = str(tmp_path_factory.mktemp("torchvision") / "resnet18-f37072fd.pth")
    write_pth(path, torch_weights.state_dict(_listing("resnet18")))
    return path


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_takes_a_torchvision_state_dict(world, torchvision_resnet18, command, tmp_path, capsys):
    # the network comes from the state dict's keys; its pipeline from the registry (simtrans)
    main, argv = _command(command, world, torchvision_resnet18, tmp_path, image_size=32)
    main(argv)
    printed = capsys.readouterr().out
    loaded = [line for line in printed.splitlines()
              if line.startswith(LOADED[command].format(torchvision_resnet18))]
    assert len(loaded) == 1, printed
    # convert writes the weights at the network's default size (it runs nothing)
    size = 224 if command == "checkpoints convert" else 32
    assert f"resnet18, {size} px" in loaded[0] and "(torch state dict: " in loaded[0], loaded[0]
    if command in ("evaluate", "extract_features", "visualize_attention"):
        assert "; simtrans preprocessing" in loaded[0], loaded[0]
    if command in ("train", "simtrans pretrain"):  # a new classifier / no classifier: fc is skipped in one line
        assert "skipped the classifier fc of " in printed, printed
    assert os.listdir(tmp_path), "the command wrote nothing"
