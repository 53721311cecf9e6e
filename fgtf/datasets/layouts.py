"""Readers of each dataset's official release layout.

`read_layout(name, dataset_dir, split)` lists the images of split 'train' or
'validation' as `Record(path, label, class_name)` with absolute paths and
0-based contiguous labels. `dataset_dir` may be the folder the release archive
was extracted into or the release's own top folder (e.g. `CUB_200_2011`).

Label orders (the same for both splits of a dataset):
  cub_200, nabirds   class ids that label at least one image, sorted by id
                     (CUB: 1..200 -> 0..199; NABirds' 555 sparse leaf ids -> 0..554)
  stanford_cars      devkit class 1..196 -> 0..195
  stanford_dogs      list label 1..120 -> 0..119 (= sorted `Images/` folders)
  aircraft           line order of `variants.txt`
  flower_102         `imagelabels.mat` label 1..102 -> 0..101 (no names in the release)
  food_101           line order of `meta/classes.txt`
  inat2017           category ids sorted
  ILSVRC2012         synset ids (WNIDs) sorted, i.e. the order of the `train/`
                     folders and of `LOC_synset_mapping.txt` (n01440764 = 0)
Record order: the release's list order, or sorted paths where the release is
folders only.
"""
import csv
import json
import os

import numpy as np

from fgtf.datasets.lists import Record
from fgtf.errors import UserError


def read_layout(name, dataset_dir, split):
    """Records of `split` of dataset `name` read from its release layout in
    `dataset_dir`; a missing file is one `UserError` naming it."""
    layout, reader = LAYOUTS[name]
    return reader(_Tree(name, dataset_dir, layout), split)


def strip_number_prefix(name):
    """A class name without CUB's numeric folder prefix:
    '043.Yellow_bellied_Flycatcher' -> 'Yellow_bellied_Flycatcher'."""
    head, dot, tail = name.partition(".")
    return tail if dot and head.isdigit() else name


def _read_cub_like(tree, split, top_folder):
    """CUB-200-2011 and NABirds: `images.txt` (id path), `image_class_labels.txt`
    (id class), `train_test_split.txt` (id 1=train/0=test), `classes.txt` (class name)."""
    prefix = tree.locate("images.txt", [top_folder, ""])
    images = _read_id_table(tree.require(prefix + "images.txt"))
    class_of = dict(_read_id_table(tree.require(prefix + "image_class_labels.txt")))
    is_train = dict(_read_id_table(tree.require(prefix + "train_test_split.txt")))
    names = dict(_read_id_table(tree.require(prefix + "classes.txt")))
    class_ids = sorted({int(class_id) for class_id in class_of.values()})
    label_of = {class_id: label for label, class_id in enumerate(class_ids)}
    wanted = "1" if split == "train" else "0"
    image_dir = tree.path(prefix + "images")
    records = []
    for image_id, relative_path in images:
        for table, file in ((class_of, "image_class_labels.txt"), (is_train, "train_test_split.txt")):
            if image_id not in table:
                raise UserError(f"{tree.name}: image {image_id} of images.txt has no line in "
                                f"{tree.path(prefix + file)}")
        if is_train[image_id] == wanted:
            class_id = int(class_of[image_id])
            name = names.get(str(class_id))
            records.append(Record(os.path.join(image_dir, relative_path), label_of[class_id],
                                  strip_number_prefix(name) if name else None))
    return records


def _read_cub(tree, split):
    return _read_cub_like(tree, split, "CUB_200_2011/")


def _read_nabirds(tree, split):
    return _read_cub_like(tree, split, "nabirds/")


def _read_stanford_cars(tree, split):
    """Devkit annotations (`devkit/cars_{train,test_withlabels}_annos.mat` +
    `cars_meta.mat`, images in `cars_train/`, `cars_test/`), or the all-in-one
    `cars_annos.mat` (images in `car_ims/`, a `test` flag per image)."""
    if not os.path.isfile(tree.path("devkit/cars_meta.mat")) and os.path.isfile(tree.path("cars_annos.mat")):
        path = tree.path("cars_annos.mat")
        class_names, annotations = _load_mat(path, "class_names", "annotations")
        all_paths, all_classes, is_test = _struct_columns(annotations, path, "relative_im_path", "class", "test")
        wanted = 0 if split == "train" else 1
        rows = [(tree.path(str(p)), c) for p, c, test in zip(all_paths, all_classes, is_test) if int(test) == wanted]
    else:
        (class_names,) = _load_mat(tree.require("devkit/cars_meta.mat"), "class_names")
        if split == "train":
            path, image_dir = tree.require("devkit/cars_train_annos.mat"), "cars_train"
        else:
            path = tree.require("devkit/cars_test_annos_withlabels.mat", "cars_test_annos_withlabels.mat",
                                hint="the test labels are the separate file cars_test_annos_withlabels.mat")
            image_dir = "cars_test"
        (annotations,) = _load_mat(path, "annotations")
        names, classes = _struct_columns(annotations, path, "fname", "class")
        rows = [(tree.path(image_dir, str(name)), c) for name, c in zip(names, classes)]
    return [Record(image_path, int(c) - 1, str(class_names[int(c) - 1])) for image_path, c in rows]


def _read_stanford_dogs(tree, split):
    """`train_list.mat` / `test_list.mat` (from lists.tar; `file_list` paths under
    `Images/`, 1-based `labels`), or text lists `train_list.txt` / `test_list.txt`
    of paths under `Images/` labelled by their breed folder."""
    stem = "train_list" if split == "train" else "test_list"
    candidates = [stem + ".mat", f"lists/{stem}.mat", stem + ".txt", f"lists/{stem}.txt"]
    list_path = tree.require(*candidates)
    if list_path.endswith(".mat"):
        paths, labels = _load_mat(list_path, "file_list", "labels")
        paths, labels = [str(p) for p in paths], [int(label) - 1 for label in labels]
    else:
        with open(list_path, encoding="utf-8") as handle:
            paths = [line.strip() for line in handle if line.strip()]
        folders = sorted(entry.name for entry in os.scandir(tree.require("Images")) if entry.is_dir())
        label_of = {folder: label for label, folder in enumerate(folders)}
        strays = [path for path in paths if path.split("/", 1)[0] not in label_of]
        if strays:
            raise UserError(f"stanford_dogs: {list_path} lists {strays[0]}, whose breed folder is not in "
                            f"{tree.path('Images')}")
        labels = [label_of[path.split("/", 1)[0]] for path in paths]
    # folders are '<wnid>-<breed>', e.g. 'n02085620-Chihuahua'
    return [Record(tree.path("Images", path), label, path.split("/", 1)[0].split("-", 1)[-1])
            for path, label in zip(paths, labels)]


def _read_aircraft(tree, split):
    """fgvc-aircraft-2013b/data: `variants.txt` (label order), `images_variant_{trainval,test}.txt`
    (lines '<image id> <variant>'), images in `images/<id>.jpg`."""
    prefix = tree.locate("variants.txt", ["fgvc-aircraft-2013b/data/", "data/", ""])
    with open(tree.require(prefix + "variants.txt"), encoding="utf-8") as handle:
        variants = [line.strip() for line in handle if line.strip()]
    label_of = {variant: label for label, variant in enumerate(variants)}
    list_path = tree.require(prefix + ("images_variant_trainval.txt" if split == "train" else "images_variant_test.txt"))
    records = []
    for image_id, variant in _read_id_table(list_path):
        if variant not in label_of:
            raise UserError(f"aircraft: variant {variant!r} of {list_path} is not listed in "
                            f"{tree.path(prefix + 'variants.txt')}")
        records.append(Record(tree.path(prefix + "images", image_id + ".jpg"), label_of[variant], variant))
    return records


def _read_flowers(tree, split):
    """`imagelabels.mat` (1-based label per image), `setid.mat` (trnid, valid,
    tstid); images `jpg/image_%05d.jpg`. Train = trnid + valid (2040), as the
    CVPR 2018 study; validation = tstid (6149). Sorted by image id."""
    (labels,) = _load_mat(tree.require("imagelabels.mat"), "labels")
    keys = ("trnid", "valid") if split == "train" else ("tstid",)
    image_ids = sorted(int(i) for ids in _load_mat(tree.require("setid.mat"), *keys) for i in ids)
    return [Record(tree.path("jpg", f"image_{i:05d}.jpg"), int(labels[i - 1]) - 1, None) for i in image_ids]


def _read_food(tree, split):
    """food-101: `meta/classes.txt` (label order), `meta/{train,test}.txt`
    (lines '<class>/<image id>'), images `images/<class>/<image id>.jpg`."""
    prefix = tree.locate("meta/classes.txt", ["food-101/", ""])
    with open(tree.require(prefix + "meta/classes.txt"), encoding="utf-8") as handle:
        classes = [line.strip() for line in handle if line.strip()]
    label_of = {name: label for label, name in enumerate(classes)}
    list_path = tree.require(prefix + ("meta/train.txt" if split == "train" else "meta/test.txt"))
    records = []
    with open(list_path, encoding="utf-8") as handle:
        for line in handle:
            entry = line.strip()
            if entry:
                name = entry.split("/", 1)[0]
                if name not in label_of:
                    raise UserError(f"food_101: class {name!r} of {list_path} is not in meta/classes.txt")
                records.append(Record(tree.path(prefix + "images", entry + ".jpg"), label_of[name], name))
    return records


_INAT_MINIVAL_HINT = ("it is the 9,697-image minival list `inat_minival.txt` of the original repository "
                      "github.com/richardaecn/cvpr18-inaturalist-transfer; put that file in the dataset folder")


def _read_inat(tree, split):
    """`train2017.json` / `val2017.json` (COCO style: images, annotations,
    categories; `file_name` relative to the dataset folder) and `inat_minival.txt`
    (one val `file_name` per line). Validation = the minival images in list
    order; train = all train images, then the val images not in minival."""
    minival_path = tree.require("inat_minival.txt", hint=_INAT_MINIVAL_HINT)
    val = _read_coco(tree.require("val2017.json"))
    with open(minival_path, encoding="utf-8") as handle:
        # the original list may carry ': <label>' after the path; the path is what identifies an image
        minival = [line.strip().rsplit(": ", 1)[0] for line in handle if line.strip()]
    val_by_path = dict(val["images"])
    unknown = [path for path in minival if path not in val_by_path]
    if unknown:
        raise UserError(f"inat2017: {len(unknown)} paths of {minival_path} are not images of val2017.json "
                        f"(first: {unknown[0]}); {_INAT_MINIVAL_HINT}")
    if split == "validation":
        images = [(path, val_by_path[path]) for path in minival]
    else:
        held_out = set(minival)
        train = _read_coco(tree.require("train2017.json"))
        if train["categories"] != val["categories"]:
            raise UserError(f"inat2017: {tree.path('train2017.json')} and val2017.json list different categories")
        images = train["images"] + [(path, cid) for path, cid in val["images"] if path not in held_out]
    category_ids = sorted(val["categories"])
    label_of = {category_id: label for label, category_id in enumerate(category_ids)}
    return [Record(tree.path(path), label_of[cid], val["categories"][cid]) for path, cid in images]


def _read_ilsvrc(tree, split):
    """Images in `train/<wnid>/*` and `val/` under the dataset folder or under
    `ILSVRC/Data/CLS-LOC/` (Kaggle layout). Validation labels from `val/<wnid>/`
    folders if the validation images are sorted that way, else from
    `LOC_val_solution.csv`, else from the devkit's
    `ILSVRC2012_validation_ground_truth.txt` whose ids map to WNIDs through the
    devkit's `meta.mat` (its ids are not in sorted-WNID order)."""
    image_prefix = tree.locate("train", ["ILSVRC/Data/CLS-LOC/", ""])
    synsets = _ilsvrc_synsets(tree, image_prefix)
    label_of = {wnid: label for label, wnid in enumerate(sorted(synsets))}
    if split == "train":
        folder = image_prefix + "train"
        return [Record(path, label_of[wnid], synsets[wnid])
                for wnid in sorted(synsets) for path in _sorted_files(tree.require(f"{folder}/{wnid}"))]
    val_dir = tree.require(image_prefix + "val")
    if any(entry.is_dir() for entry in os.scandir(val_dir)):
        return [Record(path, label_of[wnid], synsets[wnid])
                for wnid in sorted(synsets) for path in _sorted_files(tree.require(f"{image_prefix}val/{wnid}"))]
    truth = _ilsvrc_val_truth(tree)
    records = []
    for image_name, wnid in sorted(truth.items()):
        if wnid not in label_of:
            raise UserError(f"ILSVRC2012: validation image {image_name} has synset {wnid}, "
                            f"which is not one of the training synsets")
        records.append(Record(os.path.join(val_dir, image_name + ".JPEG"), label_of[wnid], synsets[wnid]))
    return records


def _ilsvrc_synsets(tree, image_prefix):
    """{wnid: readable name}: from `LOC_synset_mapping.txt` ('n01440764 tench, Tinca
    tinca') when present, else the `train/` folders (name = WNID)."""
    mapping = tree.path("LOC_synset_mapping.txt")
    if os.path.isfile(mapping):
        with open(mapping, encoding="utf-8") as handle:
            return dict(line.strip().split(" ", 1) for line in handle if line.strip())
    train_dir = tree.require(image_prefix + "train", hint="or put LOC_synset_mapping.txt in the dataset folder")
    return {entry.name: entry.name for entry in os.scandir(train_dir) if entry.is_dir()}


def _ilsvrc_val_truth(tree):
    """{validation image name without extension: wnid}."""
    solution = tree.path("LOC_val_solution.csv")
    if os.path.isfile(solution):
        with open(solution, encoding="utf-8", newline="") as handle:
            # PredictionString = 'wnid x0 y0 x1 y1 wnid ...'; every box of an image has its class
            return {row["ImageId"]: row["PredictionString"].split()[0] for row in csv.DictReader(handle)}
    devkit_files = ("ILSVRC2012_validation_ground_truth.txt", "meta.mat")
    for folder in ("ILSVRC2012_devkit_t12/data/", ""):
        if all(os.path.isfile(tree.path(folder + f)) for f in devkit_files):
            meta = tree.path(folder + "meta.mat")
            (synsets,) = _load_mat(meta, "synsets")
            wnid_of = {int(i): str(w) for i, w in zip(*_struct_columns(synsets, meta, "ILSVRC2012_ID", "WNID"))}
            with open(tree.path(folder + devkit_files[0]), encoding="utf-8") as handle:
                ids = [int(line) for line in handle if line.strip()]
            unknown = sorted(set(ids) - set(wnid_of))
            if unknown:
                raise UserError(f"ILSVRC2012: class id {unknown[0]} of {devkit_files[0]} is not in {meta}")
            return {f"ILSVRC2012_val_{number:08d}": wnid_of[i] for number, i in enumerate(ids, 1)}
    raise UserError(f"ILSVRC2012: {tree.path('LOC_val_solution.csv')} is missing; the validation labels need it "
                    f"or the devkit's ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt with "
                    f"meta.mat, or val/<wnid>/ folders")


# name -> (what the release layout is called in errors, reader(tree, split))
LAYOUTS = {
    "ILSVRC2012": ("the ILSVRC2012 layout (train/<wnid>/, val/ with LOC_val_solution.csv or the devkit)", _read_ilsvrc),
    "inat2017": ("the iNat2017 layout (train2017.json, val2017.json, inat_minival.txt)", _read_inat),
    "aircraft": ("the fgvc-aircraft-2013b release layout", _read_aircraft),
    "cub_200": ("the CUB_200_2011 release layout", _read_cub),
    "flower_102": ("the 102 Flowers release layout (jpg/, imagelabels.mat, setid.mat)", _read_flowers),
    "food_101": ("the food-101 release layout", _read_food),
    "nabirds": ("the NABirds release layout", _read_nabirds),
    "stanford_cars": ("the Stanford Cars devkit layout", _read_stanford_cars),
    "stanford_dogs": ("the Stanford Dogs release layout (Images/, train_list.mat, test_list.mat)", _read_stanford_dogs),
}


class _Tree:
    """A dataset folder being read: joins paths and turns a missing file into
    one `UserError` that names it."""

    def __init__(self, name, dataset_dir, layout):
        self.name, self.dir, self.layout = name, os.path.abspath(dataset_dir), layout

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def require(self, *candidates, hint=None):
        """The first of `candidates` (paths relative to the dataset folder) that
        exists; if none does, a `UserError` naming the first."""
        for candidate in candidates:
            if os.path.exists(self.path(candidate)):
                return self.path(candidate)
        hint = hint or f"expected {self.layout} or train.txt/val.txt"
        raise UserError(f"{self.name}: {self.path(candidates[0])} is missing; {hint}")

    def locate(self, marker, prefixes):
        """The prefix (e.g. 'CUB_200_2011/' or '') under which `marker` exists;
        else the first prefix that is an existing folder, so the error names the
        file where the release would have it."""
        for prefix in prefixes:
            if os.path.exists(self.path(prefix + marker)):
                return prefix
        return next((p for p in prefixes if os.path.isdir(self.path(p))), prefixes[-1])


def _read_id_table(path):
    """Lines '<id> <value>' (value may hold spaces) as [(id, value)] in file order."""
    with open(path, encoding="utf-8") as handle:
        rows = [line.strip().split(" ", 1) for line in handle if line.strip()]
    bad = next((row for row in rows if len(row) != 2), None)
    if bad:
        raise UserError(f"{path}: expected lines '<id> <value>', got {' '.join(bad)!r}")
    return [tuple(row) for row in rows]


def _load_mat(path, *names):
    """The variables `names` of a MATLAB file, each as a 1-D array."""
    from scipy.io import loadmat  # scipy is only needed for the .mat layouts
    from scipy.io.matlab import MatReadError

    try:
        variables = loadmat(path, squeeze_me=True)
    except (MatReadError, ValueError, OSError, TypeError) as error:
        raise UserError(f"{path} is not a readable MATLAB file ({error})") from None
    missing = [name for name in names if name not in variables]
    if missing:
        raise UserError(f"{path} has no variable {missing[0]!r}; expected the release's file")
    return [np.atleast_1d(variables[name]) for name in names]


def _struct_columns(structs, path, *fields):
    """Fields of a MATLAB struct array (as `_load_mat` returns it), one list per field."""
    missing = [field for field in fields if field not in (structs.dtype.names or ())]
    if missing:
        raise UserError(f"{path}: its struct array has no field {missing[0]!r}; expected the release's file")
    return [[struct[field] for struct in structs] for field in fields]


def _read_coco(path):
    """{'images': [(file_name, category_id)] in file order, 'categories': {id: name}}."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        category_of = {a["image_id"]: a["category_id"] for a in data["annotations"]}
        images = [(image["file_name"], category_of[image["id"]]) for image in data["images"]]
        categories = {c["id"]: c["name"] for c in data["categories"]}
    except (ValueError, KeyError, TypeError) as error:
        raise UserError(f"{path} is not a COCO-style annotation file with images, annotations and "
                        f"categories ({type(error).__name__}: {error})") from None
    return {"images": images, "categories": categories}


def _sorted_files(folder):
    return sorted(entry.path for entry in os.scandir(folder) if entry.is_file())
