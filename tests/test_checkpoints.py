"""fgtf.checkpoints: the convert CLI, every kind of --checkpoint through one
loader, Keras weights files and SavedModel folders."""
import os

import numpy as np
import pytest
import tensorflow as tf
import keras

from fgtf import checkpoints
from fgtf.checkpoints import saved_model
from test_weights import slim_values, write_values
from fgtf.errors import ParameterError, UserError
from fgtf.checkpoints.__main__ import main as checkpoints_command

pytestmark = pytest.mark.usefixtures("tiny_models_registered")


@pytest.mark.reference
def test_convert_cli_then_load_weights_file_into_a_headless_build(tmp_path, slim_checkpoint, capsys):
    from fgtf.models import build_model
    from fgtf.models.layers import slim_variable_name

    prefix = slim_checkpoint("inception_v3")
    out = tmp_path / "inception_v3.weights.h5"
    checkpoints_command(["convert", "--model", "inception_v3", "--checkpoint", prefix, "--out", str(out)])
    printed = capsys.readouterr().out
    assert "inception_v3, 299 px, 10 classes, raw weights (TF-Slim checkpoint: " in printed
    assert "with aux logits" in printed
    # The file holds the classifier; a feature extractor without it loads the rest by layer name.
    model = build_model("inception_v3", include_top=False, weights=str(out), input_shape=(139, 139, 3))
    reader = tf.train.load_checkpoint(prefix)
    compared = 0
    for layer in model.layers:
        for weight in layer.weights:
            expected = reader.get_tensor(slim_variable_name("InceptionV3", layer.name, weight.name))
            np.testing.assert_array_equal(np.asarray(weight), expected)
            compared += 1
    assert compared > 300


def test_convert_cli_errors_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        checkpoints_command(["convert", "--model", "inception_v3", "--checkpoint", "x", "--out", "y.h5"])
    assert exit_info.value.code == 2 and ".weights.h5" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        checkpoints_command(["convert", "--model", "nonet", "--checkpoint", write_values(tmp_path / "c", slim_values()),
                          "--out", str(tmp_path / "y.weights.h5")])
    assert exit_info.value.code == 2 and "unknown model" in capsys.readouterr().err


def test_saved_model_folder_as_feature_extractor(tmp_path):
    class Module(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec((None, None, None, 3), tf.float32)])
        def __call__(self, images):
            return tf.concat([tf.reduce_mean(images, axis=[1, 2]), tf.reduce_max(images, axis=[1, 2])], axis=1)

    folder = tmp_path / "hub_module"
    tf.saved_model.save(Module(), str(folder))
    assert saved_model.is_saved_model(folder) and not saved_model.is_saved_model(tmp_path)
    model = saved_model.hub_feature_model(str(folder), 16)
    images = np.random.default_rng(0).uniform(-1, 1, (2, 16, 16, 3)).astype(np.float32)
    unit = (images + 1) / 2
    expected = np.concatenate([unit.mean(axis=(1, 2)), unit.max(axis=(1, 2))], axis=1)
    np.testing.assert_allclose(model.predict_on_batch(images), expected, rtol=1e-5)


# --- every kind of --checkpoint through one loader; the convert CLI's misuse

def _tiny_net_slim_checkpoint(prefix, ema_offset=None):
    """A TF-Slim checkpoint of the registered `tiny_net` (tests/tiny_models.py)
    from a seeded Keras build; with `ema_offset`, ExponentialMovingAverage
    shadows that differ from the weights by it. Returns (prefix, the build)."""
    import tiny_models
    from test_weight_kinds import write_slim_checkpoint

    keras.utils.set_random_seed(0)
    model = tiny_models.TinyNet(classes=3, classifier_activation=None)
    return write_slim_checkpoint(model, prefix, ema_offset), model


def test_load_network_reads_each_kind_and_says_what_it_used(tmp_path):
    prefix, reference = _tiny_net_slim_checkpoint(tmp_path / "tiny.ckpt", ema_offset=0.5)
    images = np.random.default_rng(1).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    loaded = checkpoints.load_network(prefix, model="tiny_net", use_ema=False)
    network, used = loaded.network, loaded.to_dict()
    assert used == {"kind": "slim", "weights": prefix, "model": "tiny_net", "head": "none", "image_size": 32,
                    "num_classes": 3, "ema": False, "preprocessing": "inception"}
    np.testing.assert_allclose(network(images), reference(images), rtol=1e-5, atol=1e-6)
    loaded = checkpoints.load_network(prefix, model="tiny_net", include_top=False, image_size=40)
    averaged, used = loaded.network, loaded.to_dict()
    assert used["ema"] is True and used["num_classes"] is None and used["image_size"] == 40
    kernel = averaged.get_layer("Mixed_5b").kernel
    np.testing.assert_allclose(kernel, np.asarray(reference.get_layer("Mixed_5b").kernel) + 0.5, rtol=1e-6)
    assert not any(layer.name.startswith("Logits") for layer in averaged.layers)

    out = str(tmp_path / "tiny.weights.h5")
    checkpoints_command(["convert", "--model", "tiny_net", "--checkpoint", prefix, "--out", out, "--use_ema", "false"])
    assert checkpoints.keras_weights_record(out) == {"model": "tiny_net", "classes": 3, "aux_logits": False,
                                                     "ema": False}
    loaded = checkpoints.load_network(out)
    from_file, used = loaded.network, loaded.to_dict()
    assert (used["kind"], used["model"], used["num_classes"], used["ema"]) == ("keras", "tiny_net", 3, False)
    np.testing.assert_allclose(from_file(images), reference(images), rtol=1e-5, atol=1e-6)
    with pytest.raises(UserError, match="holds tiny_net weights, not model small_cnn"):
        checkpoints.load_network(out, model="small_cnn")
    with pytest.raises(ParameterError, match="^image_size 4 is too small for tiny_net"):
        checkpoints.load_network(prefix, model="tiny_net", image_size=4)


def test_checkpoint_kind(tmp_path):
    prefix = write_values(tmp_path / "model.ckpt", slim_values())
    run = tmp_path / "run"
    run.mkdir()
    (run / "run_config.json").write_text("{}")
    saved = tmp_path / "saved"
    saved.mkdir()
    (saved / "saved_model.pb").write_bytes(b"")
    weights = tmp_path / "w.weights.h5"
    weights.write_bytes(b"")
    torch_files = [tmp_path / name for name in ("resnet50-19c8e357.pth", "model.pt", "checkpoint.pth.tar")]
    for path in torch_files:
        path.write_bytes(b"")
    kinds = {path: checkpoints.checkpoint_kind(str(path))
             for path in (prefix, tmp_path, run, saved, weights, *torch_files)}
    assert list(kinds.values()) == ["slim", "slim", "run", "saved_model", "keras", "torch", "torch", "torch"]
    with pytest.raises(UserError, match="checkpoint .*nothing not found"):
        checkpoints.checkpoint_kind(str(tmp_path / "nothing"))


def test_convert_misuse_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys):
    prefix, model = _tiny_net_slim_checkpoint(tmp_path / "tiny.ckpt")
    weights = tmp_path / "tiny.weights.h5"
    checkpoints.save_keras_weights(model, str(weights), "tiny_net", 3, False)
    saved = tmp_path / "saved"
    saved.mkdir()
    (saved / "saved_model.pb").write_bytes(b"")
    untrained = tmp_path / "untrained"
    untrained.mkdir()
    (untrained / "run_config.json").write_text('{"model_name": "tiny_net", "num_classes": 3, "image_size": 32}')
    out = tmp_path / "out.weights.h5"
    unrecorded = tmp_path / "unrecorded.weights.h5"
    model.save_weights(str(unrecorded))
    cases = [([str(weights), "--model", "small_cnn"], "holds tiny_net weights, not --model small_cnn"),
             ([str(unrecorded)], "--model is required for"),
             ([str(unrecorded), "--model", "tiny_net"], "does not record its class count"),
             ([str(unrecorded), "--model", "small_cnn", "--num_classes", "3"], "does not hold weights of SmallCNN"),
             ([str(saved)], "is a SavedModel, an opaque graph with no fgtf network to convert"),
             ([str(untrained)], "holds no checkpoint yet; train it first"),
             ([prefix, "--model", "tiny_net", "--use_ema", "true"], "keeps no moving averages of its weights"),
             ([prefix, "--model", "tiny_net", "--num_classes", "5"], "Logits/Logits/weights (16, 3) vs Keras (16, 5)"),
             ([prefix], "--model is required for the TF-Slim checkpoint"),
             ([prefix, "--model", "tiny_net", "--num_classes", "0"], "argument --num_classes: must be an integer"),
             ([prefix, "--model", "nonet"], "argument --model: unknown model 'nonet'")]
    before = sorted(os.listdir(tmp_path))
    for args, message in cases:
        with pytest.raises(SystemExit) as exit_info:
            checkpoints_command(["convert", "--out", str(out), "--checkpoint", *args])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        *usage, error = err.strip().splitlines()
        assert all(line.startswith(("usage:", " ")) for line in usage) and "Traceback" not in err
        assert message in error, (args, error)
    assert sorted(os.listdir(tmp_path)) == before


def test_help_needs_no_tensorflow():
    import subprocess
    import sys
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run([sys.executable, "-c", "import sys\nfrom fgtf.checkpoints.__main__ import main\n"
                           "try:\n    main(['convert', '--help'])\nexcept SystemExit:\n    pass\n"
                           "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"],
                          capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": repo})
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert "(default: auto)" in done.stdout and "--checkpoint CHECKPOINT" in done.stdout


def test_slim_checkpoint_with_aux_logits_loads_below_the_aux_heads_size(slim_checkpoint, capsys):
    """The aux head needs 299 px; smaller, the classifier loads and the AuxLogits variables are skipped."""
    loaded = checkpoints.load_network(slim_checkpoint("inception_v3"), model="inception_v3", image_size=83)
    network, used = loaded.network, loaded.to_dict()
    assert len(network.outputs) == 1 and network.outputs[0].shape[-1] == used["num_classes"]
    assert used["image_size"] == 83
    assert "AuxLogits" in capsys.readouterr().out
