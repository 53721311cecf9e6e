"""A dataset of your own, given only by its folder: image-folder trees
(`train/<class>/*.jpg`, `val/<class>/*.jpg`) and seed lists without
classes.txt, read by every command without `--dataset`, with the class
names carried from the folder to every output (docs/own-dataset.md, "your own dataset
in four commands")."""
import csv
import json
import os

import numpy as np
import pytest
from PIL import Image

from fgtf import convert, datasets, evaluate, extract_features, train, visualize_attention
from fgtf.transfer import linear
from fgtf.errors import UserError
from fgtf.export.__main__ import main as export_command

pytestmark = pytest.mark.usefixtures("tiny_models_registered")

CLASSES = ["Acadian Flycatcher", "Baltimore_Oriole", "Cedar.Waxwing"]  # sorted, as their folders


def _image(path, colour, format="JPEG"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pixels = np.random.default_rng(len(path)).integers(0, 60, (40, 40, 3)) + np.array(colour)
    Image.fromarray(pixels.astype(np.uint8)).save(path, format=format)


def image_folder_tree(root, train_per_class=4, val_per_class=2, val_folder="val"):
    """root/train/<class>/<i>.jpg and root/<val_folder>/<class>/<i>.png, one colour per class."""
    for label, name in enumerate(reversed(CLASSES)):  # written out of order: labels follow the sorted names
        colour = [(190, 20, 20), (20, 190, 20), (20, 20, 190)][label]
        for index in range(train_per_class):
            _image(os.path.join(root, "train", name, f"{index}.jpg"), colour)
        for index in range(val_per_class):
            _image(os.path.join(root, val_folder, name, f"{index}.png"), colour, "PNG")
    return str(root)


@pytest.mark.parametrize("val_folder", ["val", "validation", "valid", "test"])
def test_an_image_folder_tree_is_a_dataset_labelled_by_sorted_class_folders(tmp_path, val_folder):
    root = image_folder_tree(tmp_path / "birds", val_folder=val_folder)
    train_records = datasets.read_split(datasets.GENERIC, root, "train")
    assert [(os.path.relpath(r.path, root), r.label, r.class_name) for r in train_records[:5]] == [
        ("train/Acadian Flycatcher/0.jpg", 0, "Acadian Flycatcher"),
        ("train/Acadian Flycatcher/1.jpg", 0, "Acadian Flycatcher"),
        ("train/Acadian Flycatcher/2.jpg", 0, "Acadian Flycatcher"),
        ("train/Acadian Flycatcher/3.jpg", 0, "Acadian Flycatcher"),
        ("train/Baltimore_Oriole/0.jpg", 1, "Baltimore_Oriole")]
    validation = datasets.read_split(datasets.GENERIC, root, "validation")
    assert [r.label for r in validation] == [0, 0, 1, 1, 2, 2]
    assert all(r.path.endswith(".png") for r in validation)
    assert datasets.get_num_classes(datasets.GENERIC, root) == 3


def test_an_image_folder_tree_that_is_not_whole_gets_one_sentence(tmp_path):
    root = image_folder_tree(tmp_path / "birds")
    os.makedirs(os.path.join(root, "val", "Dodo"))
    with pytest.raises(UserError, match=r"val/Dodo is a class folder that .*train lacks"):
        datasets.read_split(datasets.GENERIC, root, "validation")
    os.makedirs(os.path.join(root, "train", "Dodo"))
    with pytest.raises(UserError, match=r"class folder .*train/Dodo holds no images"):
        datasets.read_split(datasets.GENERIC, root, "train")
    lone = image_folder_tree(tmp_path / "lone", val_folder="elsewhere")
    with pytest.raises(UserError, match="has train/ but no validation folder; expected one of validation/, val/"):
        datasets.read_split(datasets.GENERIC, lone, "validation")
    with pytest.raises(UserError, match=r"train.txt is missing; a dataset folder holds the split lists train.txt "
                                        r"and val.txt .* or the folders train/<class>/ and val/<class>/"):
        datasets.read_split(datasets.GENERIC, str(tmp_path), "train")


def test_seed_lists_without_classes_txt_take_their_names_from_the_image_folders(tmp_path):
    for line in ("a/Kiwi/1.jpg: 1", "a/Emu/2.jpg: 0"):
        (tmp_path / "train.txt").open("a").write(line + "\n")
    (tmp_path / "val.txt").write_text("b/Emu/3.jpg: 0\n")
    assert [r.class_name for r in datasets.read_split(datasets.GENERIC, str(tmp_path), "train")] == ["Kiwi", "Emu"]
    (tmp_path / "train.txt").write_text("flat/1.jpg: 1\nflat/2.jpg: 0\n")  # one folder for two classes: no names
    assert [r.class_name for r in datasets.read_split(datasets.GENERIC, str(tmp_path), "train")] == [None, None]


def test_convert_names_every_class_even_of_an_unnamed_dataset(tmp_path, capsys):
    root = tmp_path / "flat"
    for split, count in (("train", 3), ("val", 2)):
        lines = []
        for index in range(count):
            _image(str(root / "images" / f"{split}{index}.jpg"), (90, 90, 90))
            lines.append(f"images/{split}{index}.jpg: {index % 2}")
        (root / f"{split}.txt").write_text("\n".join(lines) + "\n")
    assert convert.main(["--dataset_dir", str(root), "--num_shards", "1"]) == 0
    assert (root / "tfrecords" / "classes.txt").read_text() == "0\n1\n"


def test_class_names_by_label_name_only_labels_0_to_k():
    from fgtf.datasets import Record

    named = [Record("a/x.jpg", 1, "Kiwi"), Record("b/y.jpg", 0, None)]
    assert datasets.class_names_by_label(named) == ["0", "Kiwi"]
    # a gap (or one label of a billion, which must not become a billion names) gives no list
    assert datasets.class_names_by_label([Record("a/x.jpg", 0, "Emu"), Record("b/y.jpg", 10**9, None)]) is None


def test_convert_needs_a_folder_or_a_dataset_name(tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        convert.main(["--num_shards", "1"])
    assert exited.value.code == 2
    assert "give --dataset_dir, the folder of your dataset" in capsys.readouterr().err


@pytest.mark.slow
def test_your_own_dataset_in_four_commands_keeps_its_class_names(tmp_path, capsys):
    """The four commands of docs/own-dataset.md on an image-folder tree (no --dataset anywhere):
    convert, train from a checkpoint, evaluate, extract + probe; then the
    attention figure and an export, every output naming the classes."""
    root = image_folder_tree(tmp_path / "my_birds", train_per_class=6, val_per_class=3)
    small = ["--model", "tiny_net", "--image_size", "32", "--batch_size", "6", "--optimizer", "adam",
             "--learning_rate", "0.01", "--log_every_n_steps", "1"]
    assert convert.main(["--dataset_dir", root, "--num_shards", "2"]) == 0
    assert open(os.path.join(root, "tfrecords", "classes.txt")).read().splitlines() == CLASSES
    train.main(["--dataset_dir", root, "--run_dir", str(tmp_path / "start"), "--max_number_of_steps", "1", *small])
    train.main(["--dataset_dir", root, "--run_dir", str(tmp_path / "mine"), "--checkpoint", str(tmp_path / "start"),
                "--max_number_of_steps", "4", *small])
    run = tmp_path / "mine"
    assert (run / "classes.txt").read_text().splitlines() == CLASSES
    assert json.loads((run / "run_config.json").read_text())["dataset_name"] == "folder"

    evaluate.main(["--checkpoint", str(run), "--dataset_dir", root])
    with open(run / "eval" / "per_class_accuracy.csv") as handle:
        assert [row["name"] for row in csv.DictReader(handle)] == CLASSES
    assert json.loads((run / "eval" / "eval_results.json").read_text())["class_names"] == CLASSES

    features = str(tmp_path / "feature")
    extract_features.main(["--dataset_dir", root, "--checkpoint", str(run), "--out", features])
    assert open(os.path.join(features, "my_birds_classes.txt")).read().splitlines() == CLASSES
    linear.main(["--features", features, "--k", "2", "--queries", "2"])
    assert json.loads(open(os.path.join(features, "my_birds_linear_results.json")).read())["class_names"] == CLASSES
    assert os.path.getsize(os.path.join(features, "my_birds_linear_retrieval.png")) > 1000

    image = os.path.join(root, "val", "Cedar.Waxwing", "0.png")
    visualize_attention.main(["--checkpoint", str(run), "--images", image])
    line = capsys.readouterr().out.splitlines()[-1]
    assert line.startswith("Cedar.Waxwing/0.png; true Cedar.Waxwing; predicted ")
    export_command(["--checkpoint", str(run), "--format", "keras", "--out", str(tmp_path / "export")])
    assert (tmp_path / "export" / "labels.txt").read_text().splitlines() == CLASSES


def test_attention_titles_name_the_folder_the_true_and_the_predicted_class():
    names = ["Emu", "Kiwi"]
    assert visualize_attention.image_title("data/val/Kiwi/0001.jpg", names, 1) == (
        "Kiwi/0001.jpg\ntrue Kiwi\npredicted Kiwi (right)")
    assert visualize_attention.image_title("data/val/Kiwi/0001.jpg", names, 0) == (
        "Kiwi/0001.jpg\ntrue Kiwi\npredicted Emu (wrong)")
    assert visualize_attention.image_title("photos/0001.jpg", names, 0) == "photos/0001.jpg\npredicted Emu"
