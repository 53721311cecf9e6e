"""fgtf.export: every format reloads with its own runtime (Keras, TensorFlow /
TF-Hub, LiteRT, onnxruntime) and returns what the Keras model returns, int8
LiteRT keeps the float model's top-1, `.keras` files of head models open
without fgtf, the files beside the artifact, and misuse (exit 2, one line,
nothing written)."""
import hashlib
import json
import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest

from conftest import relative_l2
from fgtf import evaluate, export, extract_features, train
from fgtf.checkpoints import load_network, save_keras_weights
from fgtf.convert import ConvertOptions, convert
from fgtf.datasets.synthetic import generate
from fgtf.models import build_model
from fgtf.errors import UserError
from fgtf.export.__main__ import main as export_command

SIZE = 64  # small_cnn's own size
INCEPTION_SIZE = 83  # above inception_v3's smallest (75), kept small for speed
TOLERANCE = 1e-4  # relative L2 of every runtime's output against the Keras model's


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A 5-class synthetic dataset at 64 px (raw images and shards) and a
    small_cnn `.weights.h5`: fixed-seed convolutions under a classifier fitted
    to their features of the train split (logistic regression), so that its
    logits are scaled and spread like a trained classifier's. (This data is
    built to defeat such shallow features: on validation it stays at chance,
    as from-scratch training does for far more steps than a test can take.)"""
    from sklearn.linear_model import LogisticRegression

    root = tmp_path_factory.mktemp("export")
    generate(str(root / "raw"), classes=5, train_per_class=40, val_per_class=24, image_size=SIZE, seed=0, num_workers=1)
    convert(ConvertOptions(dataset="synthetic", num_shards=1, dataset_dir=str(root / "raw"),
                           output_dir=str(root / "tfrecords"), progress=False))
    keras.utils.set_random_seed(0)
    network = build_model("small_cnn", classes=5, classifier_activation=None, input_shape=(SIZE, SIZE, 3))
    pooled = keras.Model(network.input, network.get_layer("Logits.AvgPool").output)
    train_images, train_labels = _split(str(root / "tfrecords"), "train")
    for layer in network.layers:  # batch norm statistics of these images, layer by layer, as training gathers
        if isinstance(layer, keras.layers.BatchNormalization):
            inputs = np.asarray(keras.Model(network.input, layer.input).predict_on_batch(train_images * 2.0 - 1.0))
            layer.moving_mean.assign(inputs.mean(axis=(0, 1, 2)))
            layer.moving_variance.assign(inputs.var(axis=(0, 1, 2)))
    features = np.asarray(pooled.predict_on_batch(train_images * 2.0 - 1.0))
    probe = LogisticRegression(C=1.0, max_iter=5000).fit(features, train_labels)
    network.get_layer("Logits.Logits").set_weights([probe.coef_.T, probe.intercept_])
    weights = str(root / "small_cnn.weights.h5")
    save_keras_weights(network, weights, "small_cnn", 5, False)
    images, labels = _split(str(root / "tfrecords"), "validation")
    return {"raw": str(root / "raw"), "tfrecords": str(root / "tfrecords"), "weights": weights,
            "images": images, "labels": labels}


def _split(tfrecords, split):
    """A split's images in [0, 1] through fgtf's evaluation preprocessing, and their labels."""
    from fgtf.input_pipeline import PipelineSettings, make_dataset

    batches = list(make_dataset(tfrecords, split, PipelineSettings(image_size=SIZE, batch_size=1000, training=False)))
    return (np.asarray(batches[0][0]) + 1.0) / 2.0, np.asarray(batches[0][1])


def _keras_outputs(checkpoint, images, **options):
    """[features, logits (with a classifier)] of the fgtf network behind `checkpoint` on [0, 1]
    `images`, without fgtf.export."""
    from fgtf import runs
    from fgtf.models import feature_endpoint

    loaded = load_network(checkpoint, **options)
    network, used = loaded.network, loaded.to_dict()
    backbone = runs.backbone_of(network)
    endpoint = keras.Model(backbone.inputs, backbone.get_layer(feature_endpoint(used["model"])).output)
    x = images * 2.0 - 1.0
    features = np.asarray(endpoint(x)).mean(axis=(1, 2))
    return [features, np.asarray(network(x, training=False))] if used["num_classes"] else [features]


def _run_saved_model(path, images):
    import tensorflow as tf

    signatures = tf.saved_model.load(path).signatures
    return [np.asarray(signatures[name](images=tf.constant(images))[output])
            for name, output in (("serving_default", "features"), ("logits", "logits")) if name in signatures]


def _run_litert(path, images):
    """Outputs of the LiteRT interpreter, image by image, in the order it lists them; they must be
    named as the model card names them, in its order, as must the signature's."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=path)
    (signature,) = interpreter.get_signature_list().values()
    details = interpreter.get_output_details()
    order = json.loads(open(os.path.join(os.path.dirname(path), "model_card.json")).read())["output_order"]
    assert [d["name"] for d in details] == order and sorted(signature["outputs"]) == sorted(order)
    assert [d["name"] for d in interpreter.get_input_details()] == signature["inputs"] == ["images"]
    interpreter.resize_tensor_input(interpreter.get_input_details()[0]["index"], [1, *images.shape[1:]])
    interpreter.allocate_tensors()
    results = []
    for image in images:
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], image[None])
        interpreter.invoke()
        results.append([interpreter.get_tensor(d["index"])[0] for d in details])
    return [np.stack(column) for column in zip(*results)]


def _run_onnx(path, images):
    """Outputs of the ONNX model in its order, which must be the model card's, named as there."""
    import onnxruntime

    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    order = json.loads(open(os.path.join(os.path.dirname(path), "model_card.json")).read())["output_order"]
    assert [output.name for output in session.get_outputs()] == order
    return session.run(None, {"images": images})


def _check_formats(checkpoint, out, images, expected, **options):
    """Export `checkpoint` in the float formats and compare each runtime's outputs with `expected`."""
    runners = {"saved_model": _run_saved_model, "litert": _run_litert, "onnx": _run_onnx}
    for format, runner in runners.items():
        artifact = export.export(checkpoint, str(out / format), format=format, **options)
        outputs = runner(artifact, images)
        assert len(outputs) == len(expected), (format, len(outputs))
        for name, actual, wanted in zip(("features", "logits"), outputs, expected):
            assert actual.shape == wanted.shape, (format, name, actual.shape)
            assert relative_l2(actual, wanted) < TOLERANCE, (format, name, relative_l2(actual, wanted))


@pytest.mark.slow
def test_small_cnn_every_float_format_equals_keras(world, tmp_path):
    images = world["images"][:8]
    _check_formats(world["weights"], tmp_path, images, _keras_outputs(world["weights"], images), num_classes=5)


@pytest.mark.slow
def test_inception_v3_from_the_slim_checkpoint_every_float_format_equals_keras(slim_checkpoint, tmp_path):
    """Features only, to keep the converters' time down (logits are checked for small_cnn)."""
    checkpoint = slim_checkpoint("inception_v3")
    images = np.random.default_rng(0).uniform(0, 1, (2, INCEPTION_SIZE, INCEPTION_SIZE, 3)).astype(np.float32)
    expected = _keras_outputs(checkpoint, images, model="inception_v3", image_size=INCEPTION_SIZE, include_top=False)
    assert expected[0].shape == (2, 2048)
    _check_formats(checkpoint, tmp_path, images, expected, model="inception_v3", image_size=INCEPTION_SIZE)


@pytest.mark.slow
def test_int8_litert_from_the_command_line_keeps_the_float_top1(world, tmp_path, capsys):
    """Calibrated on the train split's shards, scored on the validation split; the command says
    one line and keeps the converter's log back."""
    from cli_helpers import run_cli

    out = tmp_path / "int8"
    code, stdout, stderr, _ = run_cli("fgtf.export", "--checkpoint", world["weights"], "--num_classes", "5",
                                      "--format", "litert_int8", "--outputs", "logits",
                                      "--calibration_dir", world["tfrecords"], "--out", str(out))
    assert code == 0, stderr[-2000:]
    artifact = str(out / "model_int8.tflite")
    assert stdout.splitlines() == [f"wrote {artifact}: small_cnn, 64 px, outputs logits (5)"]
    assert "fully_quantize" not in stderr and "Warning" not in stderr, stderr
    assert _listing(out) == ["labels.txt", "model_card.json", "model_int8.tflite"] and _listing(tmp_path) == ["int8"]
    quantised = _run_litert(artifact, world["images"])[0].argmax(-1)
    float_logits = _keras_outputs(world["weights"], world["images"])[1]
    float_top1 = float_logits.argmax(-1)
    agreement = float(np.mean(quantised == float_top1))
    logits = np.sort(float_logits, axis=-1)
    margin = logits[:, -1] - logits[:, -2]
    confident = margin >= np.median(margin)
    confident_agreement = float(np.mean(quantised[confident] == float_top1[confident]))
    accuracy = {"float": float(np.mean(float_top1 == world["labels"])),
                "int8": float(np.mean(quantised == world["labels"]))}
    with capsys.disabled():
        print(f"\nint8 LiteRT, small_cnn, {len(quantised)} synthetic validation images: top-1 agreement with float "
              f"{agreement:.3f} ({confident_agreement:.3f} on the half with the larger margins); accuracy float {accuracy['float']:.3f}, int8 {accuracy['int8']:.3f} "
              f"(drop {accuracy['float'] - accuracy['int8']:+.3f}); chance 0.2; median top-2 logit margin "
              f"{np.median(margin):.3f}")
    # not the trivial agreement of a network that answers (nearly) one class for everything
    counts = np.bincount(float_top1, minlength=5)
    assert (counts > 0).sum() >= 4 and counts.max() < 0.5 * len(float_top1), counts
    # int8 rounding may flip near-ties of this barely trained classifier, not its clear decisions
    assert confident_agreement >= 0.98 and agreement >= 0.9, (confident_agreement, agreement)
    weights = load_network(world["weights"]).network.count_params()
    assert os.path.getsize(artifact) < 0.5 * 4 * weights  # stored as 8-bit integers, not float32


@pytest.mark.slow
def test_saved_model_loads_with_hub_tfsmlayer_and_back_into_fgtf(world, tmp_path):
    import tensorflow_hub as hub

    artifact = export.export(world["weights"], str(tmp_path / "hub"), format="saved_model", num_classes=5)
    images = world["images"][:4]
    features, logits = _keras_outputs(world["weights"], images)
    assert relative_l2(hub.load(artifact)(images), features) < TOLERANCE
    layer = keras.layers.TFSMLayer(artifact, call_endpoint="serving_default")
    assert relative_l2(layer(images)["features"], features) < TOLERANCE
    logits_layer = keras.layers.TFSMLayer(artifact, call_endpoint="logits")
    assert relative_l2(logits_layer(images)["logits"], logits) < TOLERANCE

    # extract_features reads the exported folder as it reads any TF-Hub feature vector
    for name, checkpoint in (("exported", artifact), ("original", world["weights"])):
        extract_features.main(["--dataset", "synthetic", "--dataset_dir", world["raw"], "--checkpoint", checkpoint,
                               "--image_size", str(SIZE), "--splits", "validation", "--out",
                               str(tmp_path / name)])
    exported, original = (np.load(tmp_path / name / "synthetic_feature_val.npy") for name in ("exported", "original"))
    assert exported.shape == original.shape == (len(world["labels"]), 128)
    assert relative_l2(exported, original) < TOLERANCE

    # exported again, its features are fed at the size its model card says (as every command feeds it)
    model, _ = export.export_model(artifact)
    assert model.input_shape[1:3] == (SIZE, SIZE) != (299, 299)


_LOAD_WITHOUT_FGTF = """
import sys
import keras, numpy as np
model = keras.saving.load_model(sys.argv[1])
assert not any(name == "fgtf" or name.startswith("fgtf.") for name in sys.modules), "loading imported fgtf"
np.save(sys.argv[3], model.predict_on_batch(np.load(sys.argv[2]))["logits"])
"""


@pytest.mark.slow
def test_keras_file_of_a_head_run_loads_in_a_fresh_process_without_fgtf(world, tmp_path):
    """SAM: its inference path has keras.ops calls and a layer class of fgtf's own (SEF only the first)."""
    head, run = "sam", str(tmp_path / "run")
    keras.backend.clear_session()
    train.main(["--dataset_dir", world["tfrecords"], "--run_dir", run, "--model", "small_cnn", "--head", head,
                "--image_size", str(SIZE), "--batch_size", "8", "--max_number_of_steps", "1",
                "--optimizer", "momentum", "--weight_decay", "0"])
    evaluation = evaluate.evaluate_checkpoint(run, world["tfrecords"])
    artifact = export.export(run, str(tmp_path / "keras"), format="keras", outputs="both")
    card = json.loads((tmp_path / "keras" / "model_card.json").read_text())
    assert card["run_config"]["head"] == head and card["classes"] == open(f"{run}/classes.txt").read().split()
    # the card's evaluation is fgtf.evaluate's of this checkpoint, not the last training batch's
    assert card["evaluation"]["top1"] == evaluation["top1"] and card["evaluation"]["step"] == 1
    assert card["evaluation"]["num_images"] == evaluation["num_images"] and card["evaluation"]["split"] == "validation"
    assert card["training"]["step"] == 1 and "accuracy" in card["training"]["metrics_of_the_last_logged_steps"]
    assert card["checkpoint"].startswith(os.path.abspath(run) + os.sep)  # the checkpoint prefix read
    images = world["images"][:4]
    np.save(tmp_path / "images.npy", images)
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", _LOAD_WITHOUT_FGTF, artifact, str(tmp_path / "images.npy"),
                           str(tmp_path / "logits.npy")], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert relative_l2(np.load(tmp_path / "logits.npy"), _keras_outputs(run, images)[1]) < TOLERANCE


@pytest.mark.slow
def test_the_documented_snippet_loads_every_format_by_name(world, tmp_path):
    """docs/export.md's "Loading each format without fgtf", on exports of small_cnn, in a process without fgtf."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(repo, "docs", "export.md"), encoding="utf-8") as handle:
        snippet = re.search(r"Loading each format without fgtf.*?```python\n(.*?)```", handle.read(), re.S).group(1)
    for format in ("keras", "saved_model", "litert", "onnx"):
        export.export(world["weights"], str(tmp_path / "exports" / f"cub_{format}"), format=format, num_classes=5)
    code = snippet.replace("(2, 299, 299, 3)", f"(2, {SIZE}, {SIZE}, 3)") + (
        "assert features.shape == (2, 128) and logits.shape == (2, 5)\n"
        "assert not any(name.split('.')[0] == 'fgtf' for name in sys.modules)\n")
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", "import sys\n" + code], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    classes = (tmp_path / "exports" / "cub_keras" / "labels.txt").read_text().split()
    printed = done.stdout.strip().splitlines()[-1]
    assert printed.endswith("(2, 128)") and all(name in classes for name in re.findall(r"'([^']+)'", printed))


def test_labels_and_model_card(world, tmp_path):
    weights = world["weights"]
    artifact = export.export(weights, str(tmp_path / "out"), format="keras", num_classes=5,
                             calibration_dir=world["tfrecords"])
    folder = tmp_path / "out"
    assert _listing(folder) == ["labels.txt", "model.keras", "model_card.json"]
    assert artifact == str(folder / "model.keras")
    with open(os.path.join(world["tfrecords"], "classes.txt"), encoding="utf-8") as handle:
        classes = handle.read()
    assert (folder / "labels.txt").read_text() == classes and len(classes.split()) == 5
    card = json.loads((folder / "model_card.json").read_text())
    with open(weights, "rb") as handle:
        digest = hashlib.sha256(handle.read()).hexdigest()
    assert card["checkpoint"] == os.path.abspath(weights) and card["checkpoint_sha256"] == digest
    assert card["network"] == "small_cnn" and card["format"] == "keras" and card["artifact"] == "model.keras"
    assert card["input"] == {"name": "images", "shape": [None, SIZE, SIZE, 3], "dtype": "float32",
                             "range": [0.0, 1.0], "color": "RGB"}
    assert card["outputs"] == {"features": 128, "logits": 5} and card["output_order"] == ["features", "logits"]
    assert card["classes"] == classes.split()
    assert card["preprocessing"]["name"] == "inception" and card["preprocessing"]["mean"] == [0.5] * 3
    assert card["fgtf_version"]
    # without a classifier there are no classes
    export.export(weights, str(tmp_path / "headless"), format="keras")
    headless = json.loads((tmp_path / "headless" / "model_card.json").read_text())
    assert headless["outputs"] == {"features": 128} and headless["classes"] is None
    assert (tmp_path / "headless" / "labels.txt").read_text() == ""


def _refused(capsys, argv, *words):
    """fgtf.export's main must exit 2 with one error line naming `words` (after argparse's usage for
    a flag it rejects), no traceback."""
    with pytest.raises(SystemExit) as exit_info:
        export_command(argv)
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2, err
    *usage, message = err.splitlines()
    assert "Traceback" not in err and (not usage or usage[0].startswith("usage:")), err
    for word in words:
        assert word in message, err


def _listing(folder):
    return sorted(os.listdir(folder))


def test_misuse_exits_2_with_one_line_and_writes_nothing(world, slim_checkpoint, tmp_path, capsys):
    weights = world["weights"]
    out = str(tmp_path / "out")
    common = ["--checkpoint", weights, "--out", out]
    before = _listing(tmp_path)
    _refused(capsys, [*common, "--format", "tflite"], "invalid choice", "tflite")
    _refused(capsys, [*common, "--format", "keras", "--model", "no_such_net"], "unknown model", "no_such_net")
    _refused(capsys, [*common, "--format", "keras", "--model", "inception_v3"], "small_cnn", "inception_v3")
    _refused(capsys, ["--checkpoint", slim_checkpoint("inception_v3"), "--model", "small_cnn", "--out", out,
                      "--format", "keras"])
    _refused(capsys, [*common, "--format", "keras", "--num_classes", "7"], "5 classes", "--num_classes 7")
    _refused(capsys, [*common, "--format", "litert_int8"], "--calibration_dir")
    _refused(capsys, [*common, "--format", "litert_int8", "--calibration_dir", str(tmp_path)], "no TFRecord shards")
    _refused(capsys, [*common, "--format", "keras", "--checkpoint", str(tmp_path / "missing.ckpt")], "not found")
    assert _listing(tmp_path) == before
    os.makedirs(out)
    (tmp_path / "out" / "keep.txt").write_text("mine")
    _refused(capsys, [*common, "--format", "keras"], "not an empty folder")
    assert _listing(tmp_path / "out") == ["keep.txt"] and _listing(tmp_path) == sorted(before + ["out"])


def test_calibration_images_of_the_wrong_size_or_range_are_refused(world, tmp_path):
    fresh = str(tmp_path / "out")
    for images, words in ((world["images"][:4, :32, :32], "(N, 64, 64, 3)"), (world["images"][:4] * 255, "[0, 1]")):
        with pytest.raises(UserError, match=re.escape(words)):
            export.export(world["weights"], fresh, format="litert_int8", calibration_data=images)
        assert not os.path.exists(fresh) and _listing(tmp_path) == []
