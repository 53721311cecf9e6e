"""fgtf.datasets: registry, seed lists, every release layout (tiny fake trees),
label-ratio subsets, base/novel and weak-shot splits."""
import csv
import json
import os
import shutil
from collections import Counter

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

from fgtf import datasets
from fgtf.datasets import layouts
from fgtf.errors import UserError


# ---------------------------------------------------------------- tree builders
# Each builder writes a tiny release tree into `root` and returns what the
# reader must give back: {split: [(relative path, label, class name)]}.

def _image(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.new("RGB", (4, 4), (len(path) % 256, 40, 90)).save(path, "JPEG")


def _lines(path, lines):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")


def _struct_array(**columns):
    """A MATLAB struct array (1, n) with one field per column."""
    count = len(next(iter(columns.values())))
    array = np.zeros((1, count), dtype=[(field, object) for field in columns])
    for field, values in columns.items():
        for i, value in enumerate(values):
            array[0, i][field] = value
    return array


def _cell(strings):
    return np.array(strings, dtype=object).reshape(-1, 1)


def build_cub(root, top="CUB_200_2011"):
    base = os.path.join(root, top)
    classes = ["001.Black_footed_Albatross", "002.Laysan_Albatross", "003.Sooty_Albatross"]
    images, labels, flags, expected = [], [], [], {"train": [], "validation": []}
    image_id = 0
    for class_id, folder in enumerate(classes, 1):
        for k, is_train in enumerate((1, 0, 1)):
            image_id += 1
            relative = f"{folder}/{folder[4:]}_{k}.jpg"
            _image(os.path.join(base, "images", relative))
            images.append(f"{image_id} {relative}")
            labels.append(f"{image_id} {class_id}")
            flags.append(f"{image_id} {is_train}")
            split = "train" if is_train else "validation"
            expected[split].append((f"{top}/images/{relative}", class_id - 1, folder[4:]))
    _lines(os.path.join(base, "images.txt"), images)
    _lines(os.path.join(base, "image_class_labels.txt"), labels)
    _lines(os.path.join(base, "train_test_split.txt"), flags)
    _lines(os.path.join(base, "classes.txt"), [f"{i} {c}" for i, c in enumerate(classes, 1)])
    return expected


def build_nabirds(root):
    base = os.path.join(root, "nabirds")
    # sparse leaf ids; classes.txt also lists hierarchy nodes that label no image
    leaves = {1000: "Mallard (Female/Juvenile)", 295: "Brown Pelican", 817: "Barn Owl"}
    _lines(os.path.join(base, "classes.txt"),
           ["0 Birds", "1 Ducks, Geese, and Swans"] + [f"{i} {n}" for i, n in leaves.items()])
    label_of = {class_id: label for label, class_id in enumerate(sorted(leaves))}
    images, labels, flags, expected = [], [], [], {"train": [], "validation": []}
    for n, (class_id, is_train) in enumerate([(1000, 1), (295, 0), (817, 1), (295, 1), (1000, 0), (817, 0)]):
        image_id = f"{n:08x}-21dc-4d0c-bfe1-4cae3c85c829"
        relative = f"{class_id:04d}/{image_id.replace('-', '')}.jpg"
        _image(os.path.join(base, "images", relative))
        images.append(f"{image_id} {relative}")
        labels.append(f"{image_id} {class_id}")
        flags.append(f"{image_id} {is_train}")
        split = "train" if is_train else "validation"
        expected[split].append((f"nabirds/images/{relative}", label_of[class_id], leaves[class_id]))
    _lines(os.path.join(base, "images.txt"), images)
    _lines(os.path.join(base, "image_class_labels.txt"), labels)
    _lines(os.path.join(base, "train_test_split.txt"), flags)
    return expected


CAR_NAMES = ["AM General Hummer SUV 2000", "Acura RL Sedan 2012", "Acura TL Sedan 2012"]


def build_stanford_cars(root):
    expected = {"train": [], "validation": []}
    os.makedirs(os.path.join(root, "devkit"))
    savemat(os.path.join(root, "devkit", "cars_meta.mat"), {"class_names": _cell(CAR_NAMES).T})
    for split, folder, annos in (("train", "cars_train", "cars_train_annos.mat"),
                                 ("validation", "cars_test", "cars_test_annos_withlabels.mat")):
        names, classes = [], []
        for n, class_id in enumerate([3, 1, 2, 1] if split == "train" else [2, 3, 1]):
            fname = f"{n + 1:05d}.jpg"
            _image(os.path.join(root, folder, fname))
            names.append(fname)
            classes.append(class_id)
            expected[split].append((f"{folder}/{fname}", class_id - 1, CAR_NAMES[class_id - 1]))
        savemat(os.path.join(root, "devkit", annos), {"annotations": _struct_array(
            bbox_x1=[1] * len(names), bbox_y1=[1] * len(names), bbox_x2=[3] * len(names),
            bbox_y2=[3] * len(names), **{"class": classes}, fname=names)})
    return expected


def build_stanford_cars_all_in_one(root):
    expected = {"train": [], "validation": []}
    paths, classes, tests = [], [], []
    for n, (class_id, test) in enumerate([(1, 0), (2, 1), (3, 0), (2, 0), (1, 1), (3, 1)]):
        relative = f"car_ims/{n + 1:06d}.jpg"
        _image(os.path.join(root, relative))
        paths.append(relative)
        classes.append(class_id)
        tests.append(test)
        expected["validation" if test else "train"].append((relative, class_id - 1, CAR_NAMES[class_id - 1]))
    savemat(os.path.join(root, "cars_annos.mat"), {
        "annotations": _struct_array(relative_im_path=paths, **{"class": classes}, test=tests),
        "class_names": _cell(CAR_NAMES).T})
    return expected


DOG_FOLDERS = ["n02085620-Chihuahua", "n02085782-Japanese_spaniel", "n02085936-Maltese_dog"]


def _dog_split(root, split):
    pairs = [(0, 1), (2, 1), (1, 1)] if split == "train" else [(1, 2), (0, 2)]
    files, labels, expected = [], [], []
    for label, k in pairs:
        relative = f"{DOG_FOLDERS[label]}/{DOG_FOLDERS[label][:9]}_{k}.jpg"
        _image(os.path.join(root, "Images", relative))
        files.append(relative)
        labels.append(label + 1)
        expected.append((f"Images/{relative}", label, DOG_FOLDERS[label].split("-", 1)[1]))
    return files, labels, expected


def build_stanford_dogs(root):
    expected = {}
    for split, stem in (("train", "train_list"), ("validation", "test_list")):
        files, labels, expected[split] = _dog_split(root, split)
        savemat(os.path.join(root, stem + ".mat"), {"file_list": _cell(files), "labels": np.array(labels).reshape(-1, 1)})
    return expected


def build_stanford_dogs_text(root):
    expected = {}
    for split, stem in (("train", "train_list"), ("validation", "test_list")):
        files, _, expected[split] = _dog_split(root, split)
        _lines(os.path.join(root, "lists", stem + ".txt"), files)
    return expected


def build_aircraft(root):
    data = os.path.join(root, "fgvc-aircraft-2013b", "data")
    variants = ["707-320", "Cessna 172", "F-16A/B"]
    _lines(os.path.join(data, "variants.txt"), variants)
    expected = {}
    for split, file, rows in (("train", "images_variant_trainval.txt", [("1025794", 2), ("0034309", 0), ("2224564", 1)]),
                              ("validation", "images_variant_test.txt", [("1514522", 1), ("0062765", 2)])):
        for image_id, _ in rows:
            _image(os.path.join(data, "images", image_id + ".jpg"))
        _lines(os.path.join(data, file), [f"{i} {variants[label]}" for i, label in rows])
        expected[split] = [(f"fgvc-aircraft-2013b/data/images/{i}.jpg", label, variants[label]) for i, label in rows]
    return expected


def build_flower_102(root):
    labels = [3, 1, 2, 1, 3, 2, 2, 1]  # 1-based, one per image 1..8
    for image_id in range(1, len(labels) + 1):
        _image(os.path.join(root, "jpg", f"image_{image_id:05d}.jpg"))
    savemat(os.path.join(root, "imagelabels.mat"), {"labels": np.array([labels])})
    savemat(os.path.join(root, "setid.mat"), {"trnid": np.array([[7, 1, 3]]), "valid": np.array([[2, 5]]),
                                              "tstid": np.array([[8, 4, 6]])})

    def rows(ids):
        return [(f"jpg/image_{i:05d}.jpg", labels[i - 1] - 1, None) for i in ids]
    return {"train": rows([1, 2, 3, 5, 7]), "validation": rows([4, 6, 8])}


def build_food_101(root):
    base = os.path.join(root, "food-101")
    classes = ["apple_pie", "baby_back_ribs", "baklava"]
    _lines(os.path.join(base, "meta", "classes.txt"), classes)
    expected = {}
    for split, file, rows in (("train", "train.txt", [(0, "1005649"), (0, "1014775"), (1, "1005293"), (2, "1006121")]),
                              ("validation", "test.txt", [(2, "1021344"), (1, "1008795"), (0, "1011328")])):
        entries = [f"{classes[label]}/{image_id}" for label, image_id in rows]
        for entry in entries:
            _image(os.path.join(base, "images", entry + ".jpg"))
        _lines(os.path.join(base, "meta", file), entries)
        expected[split] = [(f"food-101/images/{e}.jpg", label, classes[label]) for e, (label, _) in zip(entries, rows)]
    return expected


def build_inat2017(root, minival=True):
    categories = [{"id": 7, "name": "Turdus migratorius", "supercategory": "Aves"},
                  {"id": 2, "name": "Danaus plexippus", "supercategory": "Insecta"},
                  {"id": 5, "name": "Quercus alba", "supercategory": "Plantae"}]
    name_of = {c["id"]: c["name"] for c in categories}
    label_of = {2: 0, 5: 1, 7: 2}

    def coco(file, rows, first_id):
        images, annotations = [], []
        for n, (path, category_id) in enumerate(rows):
            _image(os.path.join(root, path))
            images.append({"id": first_id + n, "file_name": path, "width": 4, "height": 4})
            annotations.append({"id": first_id + n, "image_id": first_id + n, "category_id": category_id})
        with open(os.path.join(root, file), "w", encoding="utf-8") as handle:
            json.dump({"images": images, "annotations": annotations, "categories": categories}, handle)

    def path(supercategory, category_id, n):
        return f"train_val_images/{supercategory}/{name_of[category_id].replace(' ', '_')}/{category_id}{n:03d}.jpg"
    train = [(path("Aves", 7, 0), 7), (path("Insecta", 2, 1), 2), (path("Plantae", 5, 2), 5)]
    val = [(path("Aves", 7, 3), 7), (path("Plantae", 5, 4), 5), (path("Insecta", 2, 5), 2), (path("Aves", 7, 6), 7)]
    coco("train2017.json", train, 0)
    coco("val2017.json", val, 100)
    held_out = [val[2], val[0]]
    if minival:
        _lines(os.path.join(root, "inat_minival.txt"), [p for p, _ in held_out])

    def rows(pairs):
        return [(p, label_of[c], name_of[c]) for p, c in pairs]
    return {"train": rows(train + [val[1], val[3]]), "validation": rows(held_out)}


ILSVRC_SYNSETS = {"n01440764": "tench, Tinca tinca", "n01443537": "goldfish, Carassius auratus",
                  "n01484850": "great white shark"}
# devkit ILSVRC2012_IDs are not in sorted-WNID order
ILSVRC_DEVKIT_ID = {"n01484850": 1, "n01440764": 2, "n01443537": 3}
ILSVRC_VAL = [("ILSVRC2012_val_00000001", "n01443537"), ("ILSVRC2012_val_00000002", "n01484850"),
              ("ILSVRC2012_val_00000003", "n01440764"), ("ILSVRC2012_val_00000004", "n01443537")]


def _ilsvrc_images(root, image_prefix, val_folders=False):
    expected = {"train": [], "validation": []}
    for label, wnid in enumerate(sorted(ILSVRC_SYNSETS)):
        for k in (1, 0):
            relative = f"{image_prefix}train/{wnid}/{wnid}_{k}.JPEG"
            _image(os.path.join(root, relative))
        expected["train"] += [(f"{image_prefix}train/{wnid}/{wnid}_{k}.JPEG", label) for k in (0, 1)]
    label_of = {wnid: label for label, wnid in enumerate(sorted(ILSVRC_SYNSETS))}
    for name, wnid in ILSVRC_VAL:
        relative = f"{image_prefix}val/{wnid + '/' if val_folders else ''}{name}.JPEG"
        _image(os.path.join(root, relative))
        expected["validation"].append((relative, label_of[wnid]))
    if val_folders:
        expected["validation"].sort(key=lambda row: (row[1], row[0]))
    return expected


def _with_names(expected, names):
    return {split: [(p, label, names[label]) for p, label in rows] for split, rows in expected.items()}


def build_ilsvrc_kaggle(root):
    """Kaggle LOC layout: images under ILSVRC/Data/CLS-LOC, LOC_*.csv/txt at the top."""
    expected = _ilsvrc_images(root, "ILSVRC/Data/CLS-LOC/")
    _lines(os.path.join(root, "LOC_synset_mapping.txt"), [f"{w} {n}" for w, n in ILSVRC_SYNSETS.items()])
    with open(os.path.join(root, "LOC_val_solution.csv"), "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["ImageId", "PredictionString"])
        for name, wnid in reversed(ILSVRC_VAL):
            writer.writerow([name, f"{wnid} 10 12 40 50 {wnid} 1 2 3 4 "])
    return _with_names(expected, [ILSVRC_SYNSETS[w] for w in sorted(ILSVRC_SYNSETS)])


def build_ilsvrc_devkit(root):
    """train/ and flat val/ at the top; labels from the devkit ground truth + meta.mat."""
    expected = _ilsvrc_images(root, "")
    data = os.path.join(root, "ILSVRC2012_devkit_t12", "data")
    _lines(os.path.join(data, "ILSVRC2012_validation_ground_truth.txt"),
           [str(ILSVRC_DEVKIT_ID[wnid]) for _, wnid in ILSVRC_VAL])
    wnids = sorted(ILSVRC_DEVKIT_ID, key=ILSVRC_DEVKIT_ID.get) + ["n00001740"]  # plus a non-leaf synset
    savemat(os.path.join(data, "meta.mat"), {"synsets": _struct_array(
        ILSVRC2012_ID=[1, 2, 3, 1001], WNID=wnids, words=["a", "b", "c", "entity"]).T})
    return _with_names(expected, sorted(ILSVRC_SYNSETS))


def build_ilsvrc_val_folders(root):
    return _with_names(_ilsvrc_images(root, "", val_folders=True), sorted(ILSVRC_SYNSETS))


# dataset name -> builder, files whose removal must be reported by name
LAYOUT_CASES = {
    "cub_200": (build_cub, ["CUB_200_2011/images.txt", "CUB_200_2011/image_class_labels.txt",
                            "CUB_200_2011/train_test_split.txt", "CUB_200_2011/classes.txt"]),
    "nabirds": (build_nabirds, ["nabirds/images.txt", "nabirds/image_class_labels.txt",
                                "nabirds/train_test_split.txt", "nabirds/classes.txt"]),
    "stanford_cars": (build_stanford_cars, ["devkit/cars_meta.mat", "devkit/cars_train_annos.mat",
                                            "devkit/cars_test_annos_withlabels.mat"]),
    "stanford_cars_all_in_one": (build_stanford_cars_all_in_one, []),
    "stanford_dogs": (build_stanford_dogs, ["train_list.mat", "test_list.mat"]),
    "stanford_dogs_text": (build_stanford_dogs_text, ["Images"]),
    "aircraft": (build_aircraft, ["fgvc-aircraft-2013b/data/variants.txt",
                                  "fgvc-aircraft-2013b/data/images_variant_trainval.txt",
                                  "fgvc-aircraft-2013b/data/images_variant_test.txt"]),
    "flower_102": (build_flower_102, ["imagelabels.mat", "setid.mat"]),
    "food_101": (build_food_101, ["food-101/meta/classes.txt", "food-101/meta/train.txt", "food-101/meta/test.txt"]),
    "inat2017": (build_inat2017, ["train2017.json", "val2017.json", "inat_minival.txt"]),
    "ILSVRC2012_kaggle": (build_ilsvrc_kaggle, ["LOC_val_solution.csv", "ILSVRC/Data/CLS-LOC/train/n01443537"]),
    "ILSVRC2012_devkit": (build_ilsvrc_devkit, ["ILSVRC2012_devkit_t12/data/meta.mat"]),
    "ILSVRC2012_val_folders": (build_ilsvrc_val_folders, ["val/n01443537"]),
}


def _dataset(case):
    """'stanford_cars_all_in_one' -> 'stanford_cars'."""
    return next(name for name in datasets.list_datasets() if case == name or case.startswith(name + "_"))


def _read(case, root):
    name = _dataset(case)
    return {split: datasets.read_split(name, str(root), split) for split in datasets.SPLITS}


# ---------------------------------------------------------------- registry

def test_registry_knows_every_dataset_with_its_sizes():
    expected = {"ILSVRC2012": (1000, 1281167, 50000), "inat2017": (5089, 665473, 9697), "aircraft": (100, 6667, 3333),
                "cub_200": (200, 5994, 5794), "flower_102": (102, 2040, 6149), "food_101": (101, 75750, 25250),
                "nabirds": (555, 23929, 24633), "stanford_cars": (196, 8144, 8041),
                "stanford_dogs": (120, 12000, 8580)}
    assert datasets.list_datasets() == sorted(list(expected) + ["synthetic", "folder"])
    for name, (classes, train, validation) in expected.items():
        info = datasets.get_dataset_info(name)
        assert (info.num_classes, info.split_sizes) == (classes, {"train": train, "validation": validation})
        assert datasets.get_num_classes(name) == classes
    assert set(layouts.LAYOUTS) == set(expected)
    with pytest.raises(UserError, match="unknown dataset 'cub'; known datasets: ILSVRC2012, aircraft"):
        datasets.get_dataset_info("cub")


def test_synthetic_reads_seed_lists_and_counts_classes(tmp_path):
    _lines(tmp_path / "train.txt", ["c0/a.jpg: 0", "c2/b.jpg: 2", "c1/c.jpg: 1"])
    _lines(tmp_path / "val.txt", ["c3/d.jpg: 3"])
    train = datasets.read_split("synthetic", str(tmp_path), "train")
    assert [(os.path.relpath(r.path, tmp_path), r.label, r.class_name) for r in train] == [  # named by folder
        ("c0/a.jpg", 0, "c0"), ("c2/b.jpg", 2, "c2"), ("c1/c.jpg", 1, "c1")]
    assert datasets.get_num_classes("synthetic", str(tmp_path)) == 4
    _lines(tmp_path / "classes.txt", ["red", "green", "blue", "grey", "black"])
    assert datasets.get_num_classes("synthetic", str(tmp_path)) == 5
    assert datasets.read_split("synthetic", str(tmp_path), "validation")[0].class_name == "grey"


def test_synthetic_without_lists_says_how_to_make_them(tmp_path):
    with pytest.raises(UserError, match=r"synthetic: .*train.txt is missing; generate the dataset with"):
        datasets.read_split("synthetic", str(tmp_path), "train")


def test_bad_split_folder_and_list_line(tmp_path):
    with pytest.raises(UserError, match="unknown split 'test'"):
        datasets.read_split("cub_200", str(tmp_path), "test")
    with pytest.raises(UserError, match="does not exist"):
        datasets.read_split("cub_200", str(tmp_path / "nowhere"), "train")
    _lines(tmp_path / "train.txt", ["a.jpg 3"])
    with pytest.raises(UserError, match=r"train.txt:1: expected 'relative/path.jpg: <label>' with a label of 0 or more"):
        datasets.read_split("cub_200", str(tmp_path), "train")


def test_seed_lists_take_precedence_over_the_release_layout(tmp_path):
    build_cub(tmp_path)
    _lines(tmp_path / "train.txt", ["CUB_200_2011/images/x.jpg: 4"])
    train = datasets.read_split("cub_200", str(tmp_path), "train")
    assert [(r.path, r.label) for r in train] == [(str(tmp_path / "CUB_200_2011/images/x.jpg"), 4)]
    # one seed list without the other is a partial tree
    with pytest.raises(UserError, match=r"cub_200: .*val.txt is missing; expected train.txt and val.txt"):
        datasets.read_split("cub_200", str(tmp_path), "validation")


# ---------------------------------------------------------------- release layouts

@pytest.mark.parametrize("case", sorted(LAYOUT_CASES))
def test_release_layout_reads_counts_labels_names_and_order(case, tmp_path):
    builder, _ = LAYOUT_CASES[case]
    expected = builder(str(tmp_path))
    got = _read(case, tmp_path)
    for split in datasets.SPLITS:
        rows = [(os.path.relpath(r.path, tmp_path).replace(os.sep, "/"), r.label, r.class_name) for r in got[split]]
        assert rows == expected[split], split
        assert all(os.path.isabs(r.path) and os.path.isfile(r.path) for r in got[split])
    labels = {r.label for split in datasets.SPLITS for r in got[split]}
    assert labels == set(range(len(labels))), "labels must be 0-based and contiguous"
    # the same class carries the same label and name in both splits
    assert len({(r.label, r.class_name) for split in datasets.SPLITS for r in got[split]}) == len(labels)


@pytest.mark.parametrize("case,missing", [(case, f) for case, (_, files) in sorted(LAYOUT_CASES.items()) for f in files])
def test_partial_release_tree_names_the_missing_file(case, missing, tmp_path):
    LAYOUT_CASES[case][0](str(tmp_path))
    target = tmp_path / missing
    if target.is_dir():
        shutil.rmtree(target)
    else:
        target.unlink()
    name = _dataset(case)
    with pytest.raises(UserError) as error:
        _read(case, tmp_path)
    message = str(error.value)
    assert message.startswith(f"{name}: ") or message.startswith(f"{name} "), message
    assert os.path.basename(missing) in message and "missing" in message, message


def test_release_layout_also_read_from_inside_the_top_folder(tmp_path):
    expected = build_cub(str(tmp_path))
    inner = tmp_path / "CUB_200_2011"
    train = datasets.read_split("cub_200", str(inner), "train")
    assert [os.path.relpath(r.path, tmp_path).replace(os.sep, "/") for r in train] == [p for p, _, _ in expected["train"]]


def test_empty_folder_error_names_the_expected_layout(tmp_path):
    with pytest.raises(UserError, match=r"^cub_200: .*images.txt is missing; expected the CUB_200_2011 release "
                                        r"layout or train.txt/val.txt$"):
        datasets.read_split("cub_200", str(tmp_path), "train")
    (tmp_path / "CUB_200_2011").mkdir()
    with pytest.raises(UserError, match=r"CUB_200_2011[/\\]images.txt is missing"):
        datasets.read_split("cub_200", str(tmp_path), "train")


def test_inat_without_minival_says_where_the_list_comes_from(tmp_path):
    build_inat2017(str(tmp_path), minival=False)
    with pytest.raises(UserError, match=r"inat2017: .*inat_minival.txt is missing; .*cvpr18-inaturalist-transfer.*"
                                        r"put that file in the dataset folder"):
        datasets.read_split("inat2017", str(tmp_path), "validation")


def test_inat_minival_with_labels_and_unknown_paths(tmp_path):
    expected = build_inat2017(str(tmp_path), minival=False)
    held_out = [p for p, _, _ in expected["validation"]]
    _lines(tmp_path / "inat_minival.txt", [f"{held_out[0]}: 0", held_out[1]])
    assert [r.path for r in datasets.read_split("inat2017", str(tmp_path), "validation")] == [
        str(tmp_path / p) for p in held_out]
    _lines(tmp_path / "inat_minival.txt", [held_out[0], "train_val_images/Aves/x/none.jpg"])
    with pytest.raises(UserError, match=r"1 paths of .*inat_minival.txt are not images of val2017.json "
                                        r"\(first: train_val_images/Aves/x/none.jpg\)"):
        datasets.read_split("inat2017", str(tmp_path), "train")


def test_cars_without_test_labels_points_at_the_labelled_file(tmp_path):
    build_stanford_cars(str(tmp_path))
    (tmp_path / "devkit" / "cars_test_annos_withlabels.mat").unlink()
    with pytest.raises(UserError, match="cars_test_annos_withlabels.mat is missing; the test labels are the separate"):
        datasets.read_split("stanford_cars", str(tmp_path), "validation")


def test_corrupt_release_files_give_clear_errors(tmp_path):
    build_flower_102(str(tmp_path))
    (tmp_path / "setid.mat").write_bytes(b"not a mat file")
    with pytest.raises(UserError, match="setid.mat is not a readable MATLAB file"):
        datasets.read_split("flower_102", str(tmp_path), "train")
    savemat(str(tmp_path / "setid.mat"), {"trnid": np.array([[1]]), "valid": np.array([[2]])})
    with pytest.raises(UserError, match="setid.mat has no variable 'tstid'; expected the release's file"):
        datasets.read_split("flower_102", str(tmp_path), "validation")
    build_inat2017(str(tmp_path / "inat"))
    (tmp_path / "inat" / "val2017.json").write_text('{"images": []}')
    with pytest.raises(UserError, match="val2017.json is not a COCO-style annotation file"):
        datasets.read_split("inat2017", str(tmp_path / "inat"), "validation")


# ---------------------------------------------------------------- label-ratio subsets

def _records(counts):
    """Records of classes with the given image counts, interleaved across classes."""
    rows = [(label, k) for label, count in enumerate(counts) for k in range(count)]
    rows.sort(key=lambda row: (row[1], row[0]))
    return [datasets.Record(f"/d/c{label}/{k:03d}.jpg", label, f"c{label}") for label, k in rows]


def test_label_ratio_subset_per_class_counts_follow_sam():
    records = _records([30, 29, 30, 3, 1])
    for ratio, per_class in ((10, [3, 3, 3, 1, 1]), (15, [5, 5, 5, 1, 1]), (30, [9, 9, 9, 1, 1]),
                             (50, [15, 15, 15, 2, 1]), (100, [30, 29, 30, 3, 1])):
        subset = datasets.label_ratio_subset(records, ratio, seed=0)
        counts = Counter(r.label for r in subset)
        assert [counts[label] for label in range(5)] == per_class, ratio
        positions = [records.index(r) for r in subset]
        assert positions == sorted(positions), "kept records stay in input order"
    assert datasets.label_ratio_subset(records, 100) == records


def test_label_ratio_subset_is_deterministic_nested_and_order_independent():
    records = _records([40, 25, 33])
    first = datasets.label_ratio_subset(records, 15, seed=3)
    assert first == datasets.label_ratio_subset(records, 15, seed=3)
    assert set(first) != set(datasets.label_ratio_subset(records, 15, seed=4))
    shuffled = [records[i] for i in np.random.default_rng(0).permutation(len(records))]
    assert set(datasets.label_ratio_subset(shuffled, 15, seed=3)) == set(first)
    nested = [set(datasets.label_ratio_subset(records, ratio, seed=3)) for ratio in (10, 15, 30, 50, 100)]
    assert all(small <= large for small, large in zip(nested, nested[1:]))
    with pytest.raises(UserError, match=r"label ratio must be a percentage in \(0, 100\], got 0"):
        datasets.label_ratio_subset(records, 0)
    with pytest.raises(UserError, match="got 150"):
        datasets.label_ratio_subset(records, 150)


# ---------------------------------------------------------------- base/novel and weak-shot

def test_base_novel_split_is_a_seeded_partition():
    base, novel = datasets.base_novel_split(20, 5, seed=1)
    assert len(novel) == 5 and sorted(base + novel) == list(range(20)) and novel == sorted(novel)
    assert (base, novel) == datasets.base_novel_split(20, 5, seed=1)
    assert novel != datasets.base_novel_split(20, 5, seed=2)[1]
    for bad in (0, 20):
        with pytest.raises(UserError, match="number of novel classes must be between 1 and 19"):
            datasets.base_novel_split(20, bad)


def test_class_split_from_names_keeps_the_file_order(tmp_path):
    names = ["Black_footed_Albatross", "Laysan_Albatross", "Sooty_Albatross", "Groove_billed_Ani"]
    (tmp_path / "testclasses.txt").write_text("003.Sooty_Albatross\n001.Black_footed_Albatross")  # no final newline
    novel_names = datasets.read_name_list(str(tmp_path / "testclasses.txt"))
    assert datasets.class_split_from_names(names, novel_names) == ([1, 3], [2, 0])
    assert datasets.class_split_from_names(names, novel_names, ["Groove_billed_Ani", "002.Laysan_Albatross"]) == (
        [3, 1], [2, 0])
    with pytest.raises(UserError, match="class names not in the dataset: 999.Dodo"):
        datasets.class_split_from_names(names, ["999.Dodo"])
    with pytest.raises(UserError, match="Sooty_Albatross are both base and novel"):
        datasets.class_split_from_names(names, ["Sooty_Albatross"], ["Sooty_Albatross"])


def test_select_classes_relabels_by_position():
    records = _records([2, 2, 2])
    selected = datasets.keep_classes(records, [2, 0])
    assert [(r.class_name, r.label) for r in selected] == [("c0", 1), ("c2", 0), ("c0", 1), ("c2", 0)]


def test_weak_shot_split_with_web_folders(tmp_path):
    build_cub(str(tmp_path))
    web = tmp_path / "web"
    for folder, files in (("003.Sooty_Albatross", ["b.jpg", "a.jpg"]), ("001.Black_footed_Albatross", ["z.jpg"])):
        for file in files:
            _image(str(web / folder / file))
    split = datasets.weak_shot_split("cub_200", str(tmp_path), novel_classes=[2, 0])
    assert split.base_classes == [1] and split.novel_classes == [2, 0]
    assert [(os.path.relpath(r.path, web), r.label, r.class_name) for r in split.novel_train] == [
        ("001.Black_footed_Albatross/z.jpg", 1, "Black_footed_Albatross"),
        ("003.Sooty_Albatross/a.jpg", 0, "Sooty_Albatross"), ("003.Sooty_Albatross/b.jpg", 0, "Sooty_Albatross")]
    assert [(r.label, r.class_name) for r in split.base_train] == [(0, "Laysan_Albatross")] * 2
    assert [(r.label, r.class_name) for r in split.base_test] == [(0, "Laysan_Albatross")]
    assert [(r.label, r.class_name) for r in split.novel_test] == [(1, "Black_footed_Albatross"),
                                                                    (0, "Sooty_Albatross")]
    _image(str(web / "777.Unknown_Bird" / "x.jpg"))
    with pytest.raises(UserError, match="Unknown_Bird does not match any class name"):
        datasets.weak_shot_split("cub_200", str(tmp_path), novel_classes=[2, 0])


def test_weak_shot_split_with_web_list_or_noisy_synthetic_train_list(tmp_path):
    _lines(tmp_path / "train.txt", ["c0/a.jpg: 0", "c1/b.jpg: 1", "c2/c.jpg: 2", "c2/f.jpg: 2"])
    _lines(tmp_path / "val.txt", ["c0/d.jpg: 0", "c2/e.jpg: 2"])
    # synthetic --label_noise: the novel classes' own (noisy) training images
    split = datasets.weak_shot_split("synthetic", str(tmp_path), novel_classes=[2])
    assert split.base_classes == [0, 1]
    assert [(os.path.relpath(r.path, tmp_path), r.label) for r in split.novel_train] == [("c2/c.jpg", 0), ("c2/f.jpg", 0)]
    assert [r.label for r in split.base_train] == [0, 1] and [r.label for r in split.novel_test] == [0]
    # a real dataset needs web data
    with pytest.raises(UserError, match=r"web.txt is missing; the weak-shot setting needs the noisy web"):
        datasets.weak_shot_split("cub_200", str(tmp_path), novel_classes=[2])
    _lines(tmp_path / "web.txt", ["web/c2/x.jpg: 2", "web/c2/y.jpg: 2", "web/c0/z.jpg: 0"])
    for name in ("synthetic", "cub_200"):
        split = datasets.weak_shot_split(name, str(tmp_path), novel_classes=[2])
        assert [(os.path.relpath(r.path, tmp_path), r.label) for r in split.novel_train] == [
            ("web/c2/x.jpg", 0), ("web/c2/y.jpg", 0)]
