"""fgtf.extract_features from the command line: weights of every kind, a run
folder's own model and image size, the settings record that keeps features of
two networks apart, misuse (exit 2, one line, files untouched), a fast quiet
--help, and backbones registered by a plugin module reaching the CLI."""
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from fgtf import extract_features, runs, train
from fgtf.checkpoints import save_keras_weights
from fgtf.transfer.feature_store import feature_files
from tfrecord_tools.manifest import sha256_file
import tiny_models
from cli_helpers import REPO, frameworks_imported

pytestmark = pytest.mark.usefixtures("tiny_models_registered")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny synthetic dataset (raw images + shards), a 2-step tiny_net run at
    32 px, a run folder without checkpoints and a tiny_net .weights.h5."""
    root = tmp_path_factory.mktemp("extract")
    tfrecords = tiny_models.tiny_synthetic_tfrecords(root, classes=3, train_per_class=2, val_per_class=1,
                                                     num_shards=1)
    run = str(root / "run")
    keras.backend.clear_session()
    train.main(["--dataset_dir", tfrecords, "--run_dir", run, "--model", "tiny_net", "--image_size", "32",
                "--batch_size", "2", "--max_number_of_steps", "2", "--optimizer", "momentum",
                "--weight_decay", "0"])
    empty = root / "untrained"
    empty.mkdir()
    (empty / runs.RUN_CONFIG).write_text(json.dumps(runs.load_run_config(run).to_dict()))
    weights = str(root / "tiny.weights.h5")
    save_keras_weights(tiny_models.TinyNet(classes=3, classifier_activation=None), weights, "tiny_net", 3, False)
    return {"raw": str(root / "raw"), "run": run, "empty": str(empty), "weights": weights}


def _extract(world, out, *extra, checkpoint=None):
    extract_features.main(["--dataset", "synthetic", "--dataset_dir", world["raw"], "--checkpoint",
                           checkpoint or world["run"], "--out", str(out), *extra])


def _files(folder):
    return {name: (folder / name).read_bytes() for name in sorted(os.listdir(folder))} if folder.exists() else {}


def test_run_folder_gives_model_and_size_and_the_record_says_so(world, tmp_path, capsys):
    out = tmp_path / "demo"
    _extract(world, out)
    printed = capsys.readouterr().out
    assert "tiny_net, 32 px, raw weights (fgtf run: " in printed
    assert "model, image size and preprocessing from its run_config.json" in printed
    features = np.load(out / "synthetic_feature_train.npy")
    assert features.shape == (6, 16) and np.load(out / "synthetic_feature_val.npy").shape == (3, 16)
    # the spatial mean of the run's Mixed_5b on the evaluation preprocessing, as the original extraction
    from fgtf import visualize_attention

    network = runs.build_network(runs.load_run_config(world["run"]))
    runs.restore_for_inference(network, runs.latest_checkpoint(world["run"]))
    paths = (out / "synthetic_path_train.txt").read_text().split()
    mixed = keras.Model(network.input, network.get_layer("Mixed_5b").output)
    expected = np.asarray(mixed(visualize_attention.load_images(paths, 32))).mean(axis=(1, 2))
    np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-6)
    record = json.loads((out / "extract_features.json").read_text())
    assert record["network"] == {"kind": "run", "weights": os.path.abspath(runs.latest_checkpoint(world["run"])),
                                 "model": "tiny_net", "head": "none", "image_size": 32, "ema": False,
                                 "preprocessing": "inception"}
    sums = {split: {kind: sha256_file(path) for kind, path in feature_files(out, "synthetic", split).items()
                    if kind != "probability"}
            for split in ("train", "validation")}
    assert record["features"]["synthetic"]["splits"] == {"train": {"images": 6, "dim": 16, "sha256": sums["train"]},
                                                         "validation": {"images": 3, "dim": 16,
                                                                        "sha256": sums["validation"]}}
    assert record["features"]["synthetic"]["dataset_dir"] == os.path.abspath(world["raw"])


def test_same_network_skips_another_network_is_refused(world, tmp_path, capsys):
    out = tmp_path / "features"
    _extract(world, out, "--splits", "val")
    assert sorted(os.listdir(out)) == ["extract_features.json", "synthetic_classes.txt", "synthetic_feature_val.npy",
                                       "synthetic_label_val.npy", "synthetic_path_val.txt"]
    before = _files(out)
    _extract(world, out, "--splits", "validation")
    assert "already extracted with these settings" in capsys.readouterr().out
    assert _files(out) == before
    with pytest.raises(SystemExit) as exit_info:
        _extract(world, out, "--splits", "val", "--image_size", "40")
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert "holds features of another network (image_size 32, now 40); pass another --out, or --overwrite" in error
    assert len(error.splitlines()) == 1 and _files(out) == before
    _extract(world, out, "--splits", "val", "--image_size", "40", "--overwrite")
    assert json.loads((out / "extract_features.json").read_text())["network"]["image_size"] == 40
    # a second dataset name joins the folder only with the same network
    with pytest.raises(SystemExit):
        _extract(world, out, "--name", "other", "--checkpoint", world["weights"])
    assert "holds features of another network (kind run, now keras; weights " in capsys.readouterr().err
    with pytest.raises(SystemExit):  # --overwrite would leave the first network's val features beside them
        _extract(world, out, "--name", "other", "--image_size", "32", "--overwrite")
    assert "(its synthetic validation would be stale)" in capsys.readouterr().err


def test_keras_weights_file_gives_its_network(world, tmp_path, capsys):
    out = tmp_path / "h5"
    _extract(world, out, "--splits", "train", checkpoint=world["weights"])
    assert "tiny_net, 32 px (Keras weights: " in capsys.readouterr().out  # TinyNet's default size
    reference = tiny_models.TinyNet(include_top=False, weights=world["weights"])
    paths = (out / "synthetic_path_train.txt").read_text().split()
    from fgtf import visualize_attention

    expected = np.asarray(reference(visualize_attention.load_images(paths, 32))).mean(axis=(1, 2))
    np.testing.assert_allclose(np.load(out / "synthetic_feature_train.npy"), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("args, message", [
    (["--image_size", "4"], "--image_size 4 is too small for tiny_net"),
    (["--checkpoint", "{weights}", "--image_size", "4"], "--image_size 4 is too small for tiny_net"),
    (["--checkpoint", "{empty}"], "holds no checkpoint yet; train it first"),
    (["--checkpoint", "{run}/nothing"], "not found"),
    (["--model", "small_cnn"], "is a run of tiny_net, not of --model small_cnn"),
    (["--model_name", "demo"], "--model_name no longer names the output folder: pass --out feature/demo"),
    (["--splits", "test"], "argument --splits: unknown split 'test'"),
    (["--batch_size", "0"], "argument --batch_size: must be an integer of at least 1"),
])
def test_misuse_is_one_line_exit_2_and_writes_nothing(world, tmp_path, capsys, args, message):
    out = tmp_path / "features"
    argv = ["--dataset", "synthetic", "--dataset_dir", world["raw"], "--checkpoint", world["run"], "--out", str(out)]
    with pytest.raises(SystemExit) as exit_info:
        extract_features.main(argv + [a.format(**world) for a in args])
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    *usage, error = captured.err.strip().splitlines()
    assert all(line.startswith(("usage:", " ")) for line in usage) and "Traceback" not in captured.err
    assert message in error
    assert not out.exists()


def _run(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": REPO, **(env or {})})


def test_help_is_fast_quiet_and_imports_no_tensorflow():
    done = _run("-m", "fgtf.extract_features", "--help")
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert frameworks_imported("fgtf.extract_features", "--help") == set()
    text = " ".join(done.stdout.split())
    assert "(default: train,validation)" in text and "(default: 64)" in text and "--model_name" not in text
    parsed = _run("-c", "import sys\nfrom fgtf.extract_features import build_parser\n"
                           "build_parser().parse_args(['--dataset', 'x', '--checkpoint', 'y'])\n"
                           "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n")
    assert parsed.returncode == 0, parsed.stderr


PLUGIN = '''
import keras
from fgtf.models import register_model


def MyNet(include_top=True, weights=None, input_shape=None, classes=10, classifier_activation=None, **_):
    inputs = keras.Input(input_shape or (24, 24, 3))
    x = keras.layers.Conv2D(5, 3, strides=2, activation="relu", name="Features")(inputs)
    if include_top:
        x = keras.layers.Dense(classes, name="Logits")(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, x, name="MyNet")
    if weights:
        from fgtf.checkpoints import load_weights
        load_weights(model, weights)
    return model


register_model("my_net", MyNet, feature_endpoint="Features")
'''


@pytest.mark.slow
def test_a_module_named_in_FGTF_MODEL_MODULES_registers_a_backbone_for_the_cli(world, tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "my_nets.py").write_text(PLUGIN)
    sys.path.insert(0, str(plugins))
    try:
        import my_nets
    finally:
        sys.path.remove(str(plugins))
    weights = str(tmp_path / "my_net.weights.h5")
    my_nets.MyNet(include_top=False).save_weights(weights)  # a plain Keras file: --model says which network
    out = tmp_path / "features"
    done = _run("-m", "fgtf.extract_features", "--dataset", "synthetic", "--dataset_dir", world["raw"],
                   "--model", "my_net", "--checkpoint", weights, "--image_size", "24", "--splits", "val",
                   "--out", str(out), env={"FGTF_MODEL_MODULES": "my_nets",
                                           "PYTHONPATH": os.pathsep.join([str(plugins), REPO])})
    assert done.returncode == 0, done.stderr
    assert "my_net, 24 px (Keras weights: " in done.stdout
    assert np.load(out / "synthetic_feature_val.npy").shape == (3, 5)
    assert "Traceback" not in done.stderr


def test_entry_point_group_and_a_broken_plugin(tmp_path):
    """An installed package's `fgtf.models` entry point (a function) registers
    on first use; a plugin that fails to import is one sentence naming it."""
    (tmp_path / "lab_nets.py").write_text(
        "from fgtf.models import register_model\n"
        "def register():\n"
        "    register_model('lab_net', lambda **kwargs: None, feature_endpoint='Features')\n")
    dist = tmp_path / "lab_nets-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: lab-nets\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[fgtf.models]\nlab_nets = lab_nets:register\n")
    path = os.pathsep.join([str(tmp_path), REPO])
    done = _run("-c", "import sys\nfrom fgtf.models import feature_endpoint, list_models\n"
                         "print('lab_net' in list_models(), feature_endpoint('lab_net'))\n"
                         "assert 'tensorflow' not in sys.modules\n", env={"PYTHONPATH": path})
    assert done.returncode == 0 and done.stdout.split() == ["True", "Features"], done.stderr
    done = _run("-m", "fgtf.extract_features", "--dataset", "synthetic", "--checkpoint", str(tmp_path),
                   "--model", "lab_net", env={"FGTF_MODEL_MODULES": "no_such_module", "PYTHONPATH": path})
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "python -m fgtf.extract_features: error: argument --model: FGTF_MODEL_MODULES names module "
        "'no_such_module', which failed to load: ModuleNotFoundError: No module named 'no_such_module'")


def test_outputs_probabilities_writes_the_classifiers_softmax_beside_the_features(world, tmp_path, capsys):
    out = tmp_path / "with_probabilities"
    _extract(world, out, "--splits", "train")
    features = (out / "synthetic_feature_train.npy").read_bytes()
    _extract(world, out, "--splits", "train", "--outputs", "features,probabilities")  # extracted again: none yet
    assert "6 x 16 features and 3 source-class probabilities" in capsys.readouterr().out
    probabilities = np.load(out / "synthetic_probability_train.npy")
    assert probabilities.dtype == np.float32 and probabilities.shape == (6, 3)
    network = runs.build_network(runs.load_run_config(world["run"]))
    runs.restore_for_inference(network, runs.latest_checkpoint(world["run"]))
    from fgtf import visualize_attention

    paths = (out / "synthetic_path_train.txt").read_text().split()
    logits = np.asarray(network(visualize_attention.load_images(paths, 32)), np.float64)
    expected = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(probabilities, expected / expected.sum(axis=1, keepdims=True), rtol=1e-5, atol=1e-6)
    assert (out / "synthetic_feature_train.npy").read_bytes() == features
    record = json.loads((out / "extract_features.json").read_text())
    entry = record["features"]["synthetic"]["splits"]["train"]
    assert {k: v for k, v in entry.items() if k != "sha256"} == {"images": 6, "dim": 16, "source_classes": 3}
    assert entry["sha256"]["probability"] == sha256_file(out / "synthetic_probability_train.npy")
    _extract(world, out, "--splits", "train", "--outputs", "probabilities,features")
    assert "already extracted with these settings" in capsys.readouterr().out
    _extract(world, out, "--splits", "train", "--overwrite")  # features alone: the probabilities would be stale
    assert not (out / "synthetic_probability_train.npy").exists()
    assert "source_classes" not in json.loads((out / "extract_features.json").read_text())[
        "features"]["synthetic"]["splits"]["train"]


@pytest.mark.parametrize("args, message", [
    (["--outputs", "features,logits"], "argument --outputs: unknown output 'logits'; choose from features, "
                                       "probabilities"),
    (["--outputs", "probabilities", "--checkpoint", "{saved_model}"],
     "is a SavedModel: only its features can be extracted (--outputs features)"),
])
def test_outputs_misuse_is_one_line_exit_2(world, tmp_path, capsys, args, message):
    saved_model = tmp_path / "hub"
    saved_model.mkdir()
    (saved_model / "saved_model.pb").write_bytes(b"")
    with pytest.raises(SystemExit) as exit_info:
        _extract(world, tmp_path / "features", *[a.format(saved_model=saved_model) for a in args])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith(message)
    assert not (tmp_path / "features").exists()
