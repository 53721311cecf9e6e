"""Attention / CAM overlays (fgtf.visualize_attention) on tiny runs of the
registered `tiny_net` backbone, trained for 2 steps on a tiny synthetic dataset."""
import json
import os

import keras
import numpy as np
import pytest

from fgtf import checkpoints, runs, train, visualize_attention
from fgtf.checkpoints.__main__ import main as checkpoints_command
import tiny_models

pytestmark = pytest.mark.usefixtures("tiny_models_registered")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_synthetic")
    tfrecords = tiny_models.tiny_synthetic_tfrecords(root, classes=3, train_per_class=4, val_per_class=1,
                                                     num_shards=1)
    images = sorted(str(p) for p in (root / "raw").rglob("*.jpg"))[:2]
    return {"tfrecords": tfrecords, "images": images, "root": root}


@pytest.fixture(scope="module")
def trained_runs(dataset):
    """Run folders of 2-step tiny_net runs: plain, SEF, SAM-Bilinear (with EMA), CLE."""
    heads = {"plain": ["--head", "none"], "sef": ["--head", "sef", "--sef_groups", "2"],
             "sam": ["--head", "sam", "--sam_bilinear", "single", "--moving_average_decay", "0.9"],
             "cle": ["--head", "cle"]}
    folders = {}
    for name, options in heads.items():
        folders[name] = str(dataset["root"] / name)
        keras.backend.clear_session()
        train.main(["--dataset_dir", dataset["tfrecords"], "--train_dir", folders[name], "--model_name", "tiny_net",
                    "--train_image_size", "32", "--batch_size", "4", "--max_number_of_steps", "2",
                    "--optimizer", "momentum", "--learning_rate", "0.05", "--weight_decay", "0", *options])
    return folders


@pytest.mark.parametrize("name", ["plain", "sef", "cle"])
def test_cam_positions_sum_to_the_logit(trained_runs, dataset, name):
    """The CAM is each position's contribution: its spatial mean plus the bias is the class logit."""
    loaded = checkpoints.load_network(trained_runs[name])
    model, used = loaded.network, loaded.to_dict()
    images = visualize_attention.load_images(dataset["images"], used["image_size"])
    feature_map_of, kernel = visualize_attention.class_activation_source(model)
    logits = np.asarray(model(images, training=False))
    classifier_bias = {"plain": lambda: model.get_layer("Logits.Logits").bias,
                       "sef": lambda: model.global_classifier.bias, "cle": lambda: model.head.bias}[name]()
    for k in range(used["num_classes"]):
        classes = np.full(len(images), k)
        cam = np.asarray(visualize_attention.class_activation_map(feature_map_of(images), kernel, classes))
        assert cam.shape == (len(images), 16, 16)
        np.testing.assert_allclose(cam.mean(axis=(1, 2)) + np.asarray(classifier_bias)[k], logits[:, k],
                                   rtol=1e-4, atol=1e-5)
    maps = visualize_attention.attention_maps(model, images)
    np.testing.assert_array_equal(maps["classes"], logits.argmax(-1))
    assert "attention" not in maps and maps["cam"].min() >= 0


def test_sam_maps_are_the_heads_own_with_ema_weights(trained_runs, dataset):
    loaded = checkpoints.load_network(trained_runs["sam"])
    model, used = loaded.network, loaded.to_dict()
    assert used["ema"] and used["head"] == "sam"
    images = visualize_attention.load_images(dataset["images"], used["image_size"])
    maps = visualize_attention.attention_maps(model, images, class_index=2)
    expected = model.attention_maps(images, np.array([2, 2]))
    np.testing.assert_allclose(maps["attention"], np.asarray(expected["predicted"]), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(maps["cam"], np.asarray(expected["cam"]), rtol=1e-5, atol=1e-6)
    probabilities = keras.ops.softmax(model(images, training=False))
    np.testing.assert_allclose(maps["probabilities"], np.asarray(probabilities)[:, 2], rtol=1e-5)


def test_cli_writes_one_overlay_per_image(trained_runs, dataset, tmp_path, capsys):
    from PIL import Image

    out = tmp_path / "overlays"
    visualize_attention.main(["--checkpoint", trained_runs["sam"], "--images", *dataset["images"],
                              "--out", str(out), "--class_index", "1"])
    printed = capsys.readouterr().out
    assert "tiny_net with a sam head, 32 px, 3 classes, EMA weights (fgtf run: " in printed
    second_class = open(os.path.join(trained_runs["sam"], "classes.txt")).read().splitlines()[1]
    assert "image size, preprocessing and classes from its run_config.json" in printed
    assert printed.count(f"; CAM of {second_class} (p = ") == 2
    pngs = sorted(os.listdir(out))
    assert len(pngs) == 2 and pngs[0].startswith("000_") and pngs[1].startswith("001_")
    with Image.open(out / pngs[0]) as png:
        # three 2.6-inch panels (input, attention, CAM) side by side at 100 dpi, under the titles' lines
        assert png.format == "PNG" and png.size[0] == 3 * 260 and png.size[1] < png.size[0] / 1.5
    visualize_attention.main(["--model_dir", trained_runs["plain"], "--images", dataset["images"][0],
                              "--image_size", "40"])  # the former flag name still works
    assert "tiny_net, 40 px, 3 classes" in capsys.readouterr().out
    written = os.listdir(os.path.join(trained_runs["plain"], "attention"))
    assert len(written) == 1 and written[0].endswith(".png")


def test_a_keras_weights_file_draws_the_same_cam_as_its_run(trained_runs, dataset, tmp_path, capsys):
    weights = str(tmp_path / "plain.weights.h5")
    checkpoints_command(["convert", "--checkpoint", trained_runs["plain"], "--out", weights])
    loaded = checkpoints.load_network(weights, image_size=32)
    from_file, used = loaded.network, loaded.to_dict()
    assert used["kind"] == "keras" and used["model"] == "tiny_net" and used["num_classes"] == 3
    from_run = checkpoints.load_network(trained_runs["plain"]).network
    images = visualize_attention.load_images(dataset["images"], 32)
    np.testing.assert_allclose(visualize_attention.attention_maps(from_file, images)["cam"],
                               visualize_attention.attention_maps(from_run, images)["cam"], rtol=1e-5, atol=1e-6)
    visualize_attention.main(["--checkpoint", weights, "--images", dataset["images"][0], "--out", str(tmp_path / "o")])
    assert "tiny_net, 32 px, 3 classes" in capsys.readouterr().out and len(os.listdir(tmp_path / "o")) == 1


def test_user_errors_exit_2(trained_runs, dataset, tmp_path, capsys, model_registry):
    def no_top_linear_classifier(include_top=True, input_shape=None, classes=10, classifier_activation=None,
                                 **_):
        inputs = keras.Input(input_shape or (32, 32, 3))
        x = keras.layers.Conv2D(4, 3, strides=2, name="Conv2d_1a_3x3")(inputs)
        logits = keras.layers.Dense(classes, name="Logits")(keras.layers.Flatten()(x))
        return keras.Model(inputs, logits, name="FlatNet")

    from fgtf.checkpoints import save_keras_weights

    model_registry("flat_net", no_top_linear_classifier, feature_endpoint="Conv2d_1a_3x3")
    unsupported = str(tmp_path / "flat.weights.h5")
    save_keras_weights(no_top_linear_classifier(classes=3), unsupported, "flat_net", 3, False)
    untrained = tmp_path / "untrained"
    untrained.mkdir()
    (untrained / runs.RUN_CONFIG).write_text(json.dumps(runs.load_run_config(trained_runs["plain"]).to_dict()))
    saved_model = tmp_path / "saved_model"
    saved_model.mkdir()
    (saved_model / "saved_model.pb").write_bytes(b"")
    image = dataset["images"][0]
    plain = trained_runs["plain"]
    cases = [(["--checkpoint", str(tmp_path / "nowhere"), "--images", image], "nowhere not found"),
             (["--checkpoint", plain, "--images", image, "missing.jpg"], "missing.jpg"),
             (["--checkpoint", unsupported, "--images", image], "no CAM for FlatNet"),
             (["--checkpoint", str(untrained), "--images", image], "holds no checkpoint yet; train it first"),
             (["--checkpoint", str(saved_model), "--images", image], "is a SavedModel, an opaque graph"),
             (["--checkpoint", plain, "--images", image, "--image_size", "4"], "--image_size 4 is too small for "
                                                                                "tiny_net"),
             (["--checkpoint", plain, "--images", image, "--image_size", "0"], "argument --image_size: must be"),
             (["--checkpoint", plain, "--images", image, "--model", "resnet_v2_50"],
              "is a run of tiny_net, not of --model resnet_v2_50"),
             (["--checkpoint", plain, "--images", image, "--model", "no_net"], "unknown model 'no_net'"),
             (["--checkpoint", plain, "--images", image, "--class_index", "3"], "--class_index"),
             (["--checkpoint", plain, "--images", str(dataset["root"] / "raw" / "train.txt")], "cannot read")]
    before = sorted(os.listdir(plain))
    for argv, message in cases:
        with pytest.raises(SystemExit) as exit_info:
            visualize_attention.main(argv + ["--out", str(tmp_path / "out")])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        *usage, error = err.strip().splitlines()
        assert all(line.startswith(("usage:", " ")) for line in usage) and "Traceback" not in err
        assert message in error, (argv, error)
    assert not (tmp_path / "out").exists() and sorted(os.listdir(plain)) == before


def test_help_is_quiet_with_defaults():
    import subprocess
    import sys

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run([sys.executable, "-m", "fgtf.visualize_attention", "--help"], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "PYTHONPATH": repo})
    assert done.returncode == 0 and done.stderr == ""
    text = " ".join(done.stdout.split())
    assert "--checkpoint CHECKPOINT, --model_dir CHECKPOINT" in text and "(default: <run>/attention" in text
