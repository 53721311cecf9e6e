"""`--preprocessing NAME`: train records it in run_config.json, and every
later command on the run (evaluate, extract_features, export,
visualize_attention) uses it unless told otherwise, recording it in what it
writes; simtrans records it in run.json. `--eval_views 10` sums SAM's ten
views. Each network's default size and pipeline come from its registry record."""
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import tiny_models
from fgtf import evaluate, extract_features, train, visualize_attention
from fgtf.preprocessing import get_pipeline
from fgtf.export.__main__ import main as export_command
from fgtf.simtrans.__main__ import main as simtrans_command
from test_weight_kinds import _refused

pytestmark = pytest.mark.usefixtures("tiny_models_registered")
SIZE = 32


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """4-class synthetic data (raw images and shards) and a tiny_net run trained with --preprocessing sam."""
    root = tmp_path_factory.mktemp("pipelines")
    tfrecords = tiny_models.tiny_synthetic_tfrecords(root, classes=4, train_per_class=4, val_per_class=2,
                                                     num_shards=1)
    run = str(root / "run")
    train.main(["--dataset_dir", tfrecords, "--run_dir", run, "--model", "tiny_net", "--image_size", str(SIZE),
                "--preprocessing", "sam", "--batch_size", "8", "--max_number_of_steps", "1"])
    raw = str(root / "raw")
    images = sorted(os.path.join(folder, name) for folder, _, names in os.walk(raw) for name in names
                    if name.endswith(".jpg"))
    return {"tfrecords": tfrecords, "raw": raw, "run": run, "images": images}


def test_train_records_the_pipeline_and_refuses_to_resume_with_another(world, capsys):
    with open(os.path.join(world["run"], "run_config.json"), encoding="utf-8") as handle:
        assert json.load(handle)["preprocessing"] == "sam"
    message = _refused(capsys, train.main, ["--dataset_dir", world["tfrecords"], "--run_dir", world["run"],
                                            "--preprocessing", "cle", "--batch_size", "8",
                                            "--max_number_of_steps", "2"])
    assert "preprocessing sam -> cle" in message


def test_min_crop_area_belongs_to_inception(world, tmp_path, capsys):
    message = _refused(capsys, train.main, ["--dataset_dir", world["tfrecords"], "--run_dir", str(tmp_path / "r"),
                                            "--model", "tiny_net", "--preprocessing", "simtrans",
                                            "--min_crop_area", "0.5", "--max_number_of_steps", "1"])
    assert "--min_crop_area sets the random crop of the inception preprocessing" in message
    assert not (tmp_path / "r").exists()


def test_evaluate_uses_the_runs_pipeline_and_records_it(world, tmp_path, capsys):
    evaluate.main(["--checkpoint", world["run"], "--dataset_dir", world["tfrecords"], "--out", str(tmp_path)])
    printed = capsys.readouterr().out
    assert "; sam preprocessing; image size, preprocessing and classes from its run_config.json" in printed
    with open(tmp_path / "eval_results.json", encoding="utf-8") as handle:
        results = json.load(handle)
    assert (results["preprocessing"], results["eval_views"]) == ("sam", 1)

    evaluate.main(["--checkpoint", world["run"], "--dataset_dir", world["tfrecords"], "--out", str(tmp_path),
                   "--eval_views", "10", "--batch_size", "4"])
    assert "10 views summed" in capsys.readouterr().out
    with open(tmp_path / "eval_results.json", encoding="utf-8") as handle:
        assert json.load(handle)["eval_views"] == 10
    message = _refused(capsys, evaluate.main, ["--checkpoint", world["run"], "--dataset_dir", world["tfrecords"],
                                               "--out", str(tmp_path / "no"), "--eval_views", "10",
                                               "--preprocessing", "inception"])
    assert ("--eval_views 10 needs a pipeline with SAM's ten test views (sam); --preprocessing inception has none"
            in message)


def test_ten_views_sum_the_logits_of_each_view(world):
    from fgtf.checkpoints import load_network
    from fgtf.input_pipeline import shard_folder

    network = load_network(world["run"]).network
    pipeline = get_pipeline("sam")
    logits, labels = evaluate.predict_logits(network, shard_folder(world["tfrecords"]), "validation", SIZE, 3,
                                             preprocessing=pipeline.ten_views())
    first = next(iter(tf.data.TFRecordDataset(sorted(tf.io.gfile.glob(
        os.path.join(shard_folder(world["tfrecords"]), "validation_*"))))))
    from tfrecord_tools.example import ENCODED, parse_example

    views = pipeline.ten_views()(parse_example(first)[ENCODED], SIZE)
    # the first image's logits are the sum over views (each in a batch of its own here)
    expected = sum(np.asarray(network(views[k:k + 1], training=False))[0] for k in range(10))
    np.testing.assert_allclose(logits[0], expected, rtol=1e-4, atol=1e-4)
    assert logits.shape == (len(labels), 4)


def test_extract_features_records_the_pipeline_its_images_went_through(world, tmp_path, capsys):
    out = str(tmp_path / "features")
    extract_features.main(["--dataset", "synthetic", "--dataset_dir", world["raw"], "--checkpoint", world["run"],
                           "--out", out, "--splits", "val"])
    assert "; sam preprocessing" in capsys.readouterr().out
    with open(os.path.join(out, "extract_features.json"), encoding="utf-8") as handle:
        assert json.load(handle)["network"]["preprocessing"] == "sam"
    # another pipeline makes other features: never mixed into the folder
    message = _refused(capsys, extract_features.main, ["--dataset", "synthetic", "--dataset_dir", world["raw"],
                                                       "--checkpoint", world["run"], "--out", out, "--splits", "val",
                                                       "--preprocessing", "simtrans"])
    assert "preprocessing sam, now simtrans" in message


def test_export_bakes_the_pipelines_normalisation_in(world, tmp_path):
    from fgtf.checkpoints import load_network

    out = str(tmp_path / "exported")
    export_command(["--checkpoint", world["run"], "--format", "keras", "--out", out])
    with open(os.path.join(out, "model_card.json"), encoding="utf-8") as handle:
        card = json.load(handle)["preprocessing"]
    assert card["name"] == "sam" and card["mean"] == [0.485, 0.456, 0.406] and "256x256" in card["before the model"]
    exported = keras.saving.load_model(os.path.join(out, "model.keras"))
    pipeline = get_pipeline("sam")
    images = pipeline(tf.io.read_file(world["images"][0]), SIZE, training=False)[tf.newaxis]
    rgb = pipeline.denormalize(images)  # what a user feeds: RGB in [0, 1]
    network = load_network(world["run"]).network
    np.testing.assert_allclose(exported(rgb)["logits"], network(images, training=False), rtol=1e-4, atol=1e-5)


def test_visualize_attention_draws_through_the_runs_pipeline(world, tmp_path, capsys):
    visualize_attention.main(["--checkpoint", world["run"], "--images", world["images"][0], "--out", str(tmp_path)])
    assert "; sam preprocessing" in capsys.readouterr().out
    assert len(os.listdir(tmp_path)) == 1


def test_simtrans_records_its_pipeline_for_every_step(world, tmp_path):
    run_dir = str(tmp_path / "simtrans")
    simtrans_command(["pretrain", "--dataset_dir", world["raw"], "--run_dir", run_dir, "--model", "tiny_net",
                   "--image_size", str(SIZE), "--preprocessing", "simtrans", "--augment", "inception",
                   "--novel_classes", "3", "--epochs", "1", "--batch_size", "4"])
    with open(os.path.join(run_dir, "run.json"), encoding="utf-8") as handle:
        assert json.load(handle)["preprocessing"] == "simtrans"
    with open(os.path.join(run_dir, "pretrain", "step.json"), encoding="utf-8") as handle:
        assert json.load(handle)["settings"]["augment"] == "train"  # the former name's meaning


def test_a_networks_default_size_and_pipeline_come_from_its_record(world, tmp_path):
    run = str(tmp_path / "small")
    train.main(["--dataset_dir", world["tfrecords"], "--run_dir", run, "--model", "small_cnn", "--batch_size", "8",
                "--max_number_of_steps", "1"])
    with open(os.path.join(run, "run_config.json"), encoding="utf-8") as handle:
        config = json.load(handle)
    assert (config["image_size"], config["preprocessing"]) == (64, "inception")
