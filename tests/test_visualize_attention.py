"""Attention / CAM overlays (fgtf.visualize_attention) on tiny runs of the
registered `tiny_net` backbone, trained for 2 steps on a tiny synthetic dataset."""
import json
import os

import keras
import numpy as np
import pytest

from fgtf import runs, train, visualize_attention
import tiny_models

tiny_models.register()


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
    model, config, _ = visualize_attention.load_run(trained_runs[name])
    images = visualize_attention.load_images(dataset["images"], config["image_size"])
    feature_map_of, kernel = visualize_attention.class_activation_source(model)
    logits = np.asarray(model(images, training=False))
    classifier_bias = {"plain": lambda: model.get_layer("Logits.Logits").bias,
                       "sef": lambda: model.global_classifier.bias, "cle": lambda: model.head.bias}[name]()
    for k in range(config["num_classes"]):
        classes = np.full(len(images), k)
        cam = np.asarray(visualize_attention.class_activation_map(feature_map_of(images), kernel, classes))
        assert cam.shape == (len(images), 16, 16)
        np.testing.assert_allclose(cam.mean(axis=(1, 2)) + np.asarray(classifier_bias)[k], logits[:, k],
                                   rtol=1e-4, atol=1e-5)
    maps = visualize_attention.attention_maps(model, images)
    np.testing.assert_array_equal(maps["classes"], logits.argmax(-1))
    assert "attention" not in maps and maps["cam"].min() >= 0


def test_sam_maps_are_the_heads_own_with_ema_weights(trained_runs, dataset):
    model, config, used_ema = visualize_attention.load_run(trained_runs["sam"])
    assert used_ema
    images = visualize_attention.load_images(dataset["images"], config["image_size"])
    maps = visualize_attention.attention_maps(model, images, class_index=2)
    expected = model.attention_maps(images, np.array([2, 2]))
    np.testing.assert_allclose(maps["attention"], np.asarray(expected["predicted"]), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(maps["cam"], np.asarray(expected["cam"]), rtol=1e-5, atol=1e-6)
    probabilities = keras.ops.softmax(model(images, training=False))
    np.testing.assert_allclose(maps["probabilities"], np.asarray(probabilities)[:, 2], rtol=1e-5)


def test_cli_writes_one_overlay_per_image(trained_runs, dataset, tmp_path, capsys):
    from PIL import Image

    out = tmp_path / "overlays"
    visualize_attention.main(["--model_dir", trained_runs["sam"], "--images", *dataset["images"],
                              "--out", str(out), "--class_index", "1"])
    printed = capsys.readouterr().out
    assert "EMA weights" in printed and printed.count("class 1 (p = ") == 2
    pngs = sorted(os.listdir(out))
    assert len(pngs) == 2 and pngs[0].startswith("000_") and pngs[1].startswith("001_")
    with Image.open(out / pngs[0]) as png:
        # three panels (input, attention, CAM) side by side
        assert png.format == "PNG" and png.size[0] > 2.5 * png.size[1]
    visualize_attention.main(["--model_dir", trained_runs["plain"], "--images", dataset["images"][0],
                              "--image_size", "40"])
    written = os.listdir(os.path.join(trained_runs["plain"], "attention"))
    assert len(written) == 1 and written[0].endswith(".png")


def test_user_errors_exit_2(trained_runs, dataset, tmp_path, capsys):
    def no_top_linear_classifier(include_top=True, input_shape=None, classes=10, classifier_activation=None,
                                 **_):
        inputs = keras.Input(input_shape)
        x = keras.layers.Conv2D(4, 3, strides=2, name="Conv2d_1a_3x3")(inputs)
        logits = keras.layers.Dense(classes, name="Logits")(keras.layers.Flatten()(x))
        return keras.Model(inputs, logits, name="FlatNet")

    from fgtf.models import register_model

    register_model("flat_net", no_top_linear_classifier, feature_endpoint="Conv2d_1a_3x3")
    unsupported = tmp_path / "flat"
    unsupported.mkdir()
    config = {**runs.load_run_config(trained_runs["plain"]), "model_name": "flat_net"}
    (unsupported / runs.RUN_CONFIG).write_text(json.dumps(config))
    untrained = tmp_path / "untrained"
    untrained.mkdir()
    (untrained / runs.RUN_CONFIG).write_text(json.dumps(runs.load_run_config(trained_runs["plain"])))
    image = dataset["images"][0]
    cases = [(["--model_dir", str(tmp_path / "nowhere"), "--images", image], "does not exist"),
             (["--model_dir", trained_runs["plain"], "--images", image, "missing.jpg"], "missing.jpg"),
             (["--model_dir", str(unsupported), "--images", image], "no CAM for FlatNet"),
             (["--model_dir", str(untrained), "--images", image], "no checkpoint"),
             (["--model_dir", trained_runs["plain"], "--images", image, "--class_index", "3"], "--class_index"),
             (["--model_dir", trained_runs["plain"], "--images", str(dataset["root"] / "raw" / "train.txt")],
              "cannot read")]
    for argv, message in cases:
        with pytest.raises(SystemExit) as exit_info:
            visualize_attention.main(argv)
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err
