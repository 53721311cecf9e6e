"""Extract per-image features: the spatial mean of a backbone's feature end
point on the evaluation preprocessing, as the original `feature_extraction.py`
(but batched through tf.data, never one image at a time).

    python -m fgtf.extract_features --dataset cub_200 --model inception_v3 \\
        --checkpoint checkpoints/inception_v3_iNat_299.ckpt
    python -m fgtf.extract_features --dataset synthetic --checkpoint runs/synthetic --out feature/demo
    python -m fgtf.extract_features --dataset_dir my_images --checkpoint runs/mine --out feature/mine

writes into the features folder `--out` (default `feature/<checkpoint stem>`)
`<name>_feature_{train,val}.npy`, `<name>_label_{train,val}.npy` and
`<name>_path_{train,val}.txt` (rows in the order of the split list),
`<name>_classes.txt` (the class names by label), where `<name>` is `--name`
(default: `--dataset`, else the dataset folder's name), and `extract_features.json`,
the record of the network that made them (model, checkpoint, image size,
whether EMA weights were used, the `--preprocessing` pipeline's test
transform the images went through: the run's, else the network's) and of
each dataset and split extracted. `--outputs features,probabilities` also
writes, for a network with a classifier, its softmax over its own (source)
classes beside the features, `<name>_probability_{train,val}.npy`, as LEEP,
NCE and `fgtf rank` read it.

`--checkpoint` is a TF-Slim checkpoint (EMA shadows used when present), a
Keras `.weights.h5`, an fgtf training run folder (its network, image size
and EMA weights when kept, unless flags say otherwise), or a local
SavedModel / TF-Hub image feature-vector folder. A SavedModel is a program:
its graph runs in this process, so load only SavedModels you trust. A split
already extracted by the same network is not extracted again (--overwrite to
redo it); the features of another network (another checkpoint, model, image
size or EMA choice) are never mixed into a folder: that is refused in one
sentence. One process writes a features folder at a time; a split's files
are replaced together and their sha256 recorded, which every reader checks.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
from typing import TYPE_CHECKING, Sequence

import numpy as np

from fgtf.command_line import SPLITS, add_network_flags, cli_main, command_parser, positive_int, split_name
from fgtf.errors import UserError
from fgtf.transfer.feature_store import RECORD, read_record

if TYPE_CHECKING:
    import keras

    from fgtf.checkpoints import LoadedWeights

# what makes features of one network: a folder holds those of one only
NETWORK_SETTINGS = ("kind", "weights", "model", "head", "image_size", "ema", "preprocessing")
OUTPUTS = ("features", "probabilities")


@cli_main
def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.model_name is not None:
        raise UserError(f"--model_name no longer names the output folder: pass --out feature/{args.model_name} "
                        f"(the features folder itself); the backbone is --model")
    if args.dataset is None and args.dataset_dir is None:
        raise UserError("give --dataset_dir, the folder of your dataset's images and split lists, or --dataset "
                        "(its folder is then <data_dir>/<dataset>)")
    extract(args.dataset, args.dataset_dir or os.path.join(args.data_dir, args.dataset), args.checkpoint,
            args.splits, model=args.model, out=args.out, image_size=args.image_size, batch_size=args.batch_size,
            overwrite=args.overwrite, name=args.name, use_ema=args.use_ema,
            allow_outside_paths=args.allow_outside_paths, outputs=args.outputs, preprocessing=args.preprocessing)


def build_parser():
    p = command_parser(__name__, __doc__)
    p.add_argument("--dataset", help="dataset registry name, e.g. cub_200, synthetic (default: folder, a dataset of "
                                     "your own in --dataset_dir)")
    p.add_argument("--dataset_dir", help="the dataset's folder of raw images: split lists, release layout or "
                                         "train/<class>/ + val/<class>/ image folders (default: <data_dir>/<dataset>)")
    p.add_argument("--data_dir", default="data", help="parent of dataset folders, used when --dataset_dir is not given")
    add_network_flags(p, saved_model=", or SavedModel folder (a program that runs in this process: only one you "
                                     "trust)")
    p.add_argument("--out", help="the features folder to write (default: feature/<checkpoint stem>)")
    p.add_argument("--name", help="dataset name in the feature file names (default: --dataset, else the name of "
                                  "--dataset_dir), e.g. to keep two synthetic datasets apart")
    p.add_argument("--splits", type=_split_list, default="train,validation",
                   help="comma-separated splits to extract: train, validation (or val)")
    p.add_argument("--batch_size", type=positive_int, default=64, help="images per forward pass")
    p.add_argument("--outputs", type=_output_list, default="features",
                   help="comma-separated: features, probabilities (the classifier's softmax over its source classes, "
                        "beside the features; the checkpoint needs a classifier)")
    p.add_argument("--overwrite", action="store_true", help="extract splits again that this network already extracted")
    p.add_argument("--allow_outside_paths", action="store_true",
                   help="read split-list images that lie outside the dataset folder (absolute paths, .., symbolic "
                        "links leading out); without it such a list is refused")
    # gone: it named the output folder, but --model_name means the backbone in every other command
    p.add_argument("--model_name", help=argparse.SUPPRESS)
    return p


def extract(dataset: str, dataset_dir: str, checkpoint: str, splits: Sequence[str] = ("train", "validation"), *,
            model: str | None = None, out: str | None = None, image_size: int | None = None, batch_size: int = 64,
            overwrite: bool = False, name: str | None = None, use_ema: bool = True, allow_outside_paths: bool = False,
            outputs: Sequence[str] = ("features",), preprocessing: str | None = None) -> str:
    """Extract and save the features of `splits` of `dataset` (read from
    `dataset_dir`; None: a dataset of your own, `fgtf.datasets.GENERIC`) with
    the network of `checkpoint` into the features folder `out` (default
    `feature/<checkpoint stem>`) as `<name>_feature_*.npy` (`name` default:
    `dataset`, else the folder's name) with the class names in
    `<name>_classes.txt`, recording the settings and each file's sha256 in
    `extract_features.json`; with "probabilities" in `outputs`, the
    classifier's softmax too (`<name>_probability_*.npy`; a split extracted
    without it is extracted again). Returns that folder. Raises UserError
    (before writing anything) when the folder holds features of another
    network, or `name`'s features of another dataset folder, and `FolderBusy`
    when another process writes it. A split list naming images outside
    `dataset_dir` is refused unless `allow_outside_paths`."""
    from fgtf.checkpoints import checkpoint_kind
    from fgtf.datasets import GENERIC
    from tfrecord_tools.folder_lock import hold_folder

    splits = [{"val": "validation"}.get(s, s) for s in splits]
    unknown = [s for s in splits if s not in SPLITS]
    if unknown:
        raise UserError(f"unknown split {unknown[0]!r}; choose train or validation (or val)")
    kind = checkpoint_kind(checkpoint)
    folder = out or os.path.join("feature", checkpoint_stem(checkpoint, kind))
    name = name or dataset or os.path.basename(os.path.normpath(os.path.abspath(dataset_dir)))
    dataset = dataset or GENERIC
    data = {"dataset": dataset, "dataset_dir": os.path.abspath(dataset_dir)}
    probabilities = "probabilities" in outputs
    extractor, loaded = load_feature_extractor(checkpoint, model=model, image_size=image_size, use_ema=use_ema,
                                               probabilities=probabilities, preprocessing=preprocessing)
    from_run = [what for what, given in (("model", model), ("image size", image_size),
                                         ("preprocessing", preprocessing)) if given is None]
    with hold_folder(folder):
        _extract_into(folder, name, splits, data, extractor, loaded, from_run, checkpoint, batch_size,
                      overwrite, allow_outside_paths, probabilities)
    return folder


def _extract_into(folder, name, splits, data, extractor, loaded, from_run, checkpoint, batch_size, overwrite,
                  allow_outside_paths, probabilities):
    """`extract`'s work in the features folder `folder`, which this process holds; `loaded`: what the
    `extractor` was built from."""
    from fgtf.checkpoints import describe
    from fgtf.datasets import class_names_by_label, read_split
    from fgtf.transfer.feature_store import (has_features, has_probabilities, load_class_names, save_class_names,
                                             save_features)
    from tfrecord_tools.atomic import remove_temporaries

    remove_temporaries(folder)  # of killed extractions
    record = read_record(folder)
    network = _network_record(loaded)
    if "network" in record:  # features of fgtf before pipelines had names went through inception's
        record["network"].setdefault("preprocessing", "inception")
    todo = [s for s in splits if overwrite or not _extracted(record, folder, name, s, network, data, has_features)
            or probabilities and not has_probabilities(folder, name, s)]
    _check_no_mixing(record, folder, name, todo, network, data, overwrite)
    print(f"{checkpoint}: {describe(loaded, from_run)}")
    if not todo:
        print(f"{folder}: {name} {', '.join(splits)} already extracted with these settings (--overwrite to redo)")
        return
    if record.get("network") != network:
        record = {"network": network, "checkpoint": checkpoint, "features": {}}
    for split in todo:
        records = read_split(data["dataset"], data["dataset_dir"], split, allow_outside_paths)
        paths = [r.path for r in records]
        extracted = extract_paths(extractor, paths, loaded.image_size, batch_size, desc=f"{name}/{split}",
                                  preprocessing=loaded.preprocessing)
        features, softmax = (extracted[0], _softmax(extracted[1])) if probabilities else (extracted, None)
        entry = record["features"].get(name, {})
        if any(entry.get(k) != v for k, v in data.items()):  # new, or another dataset folder under --overwrite
            entry = {**data, "splits": {}}

        def forget_split(entry=entry, split=split):
            # Before the files are replaced: a reader then finds the split unlisted, never a mix listed.
            record["features"][name] = entry
            entry["splits"].pop(split, None)
            _write_record(folder, record)

        sums = save_features(folder, name, split, features, [r.label for r in records], paths,
                             before_replace=forget_split, probabilities=softmax)
        entry["splits"][split] = {"images": int(features.shape[0]), "dim": int(features.shape[1]), "sha256": sums}
        if probabilities:
            entry["splits"][split]["source_classes"] = int(softmax.shape[1])
        _write_record(folder, record)
        print(f"{name}/{split}: {features.shape[0]} x {features.shape[1]} features"
              + (f" and {softmax.shape[1]} source-class probabilities" if probabilities else "") + f" -> {folder}")
        class_names = class_names_by_label(records)
        if class_names and (load_class_names(folder, name) or [])[:len(class_names)] != class_names:
            save_class_names(folder, name, class_names)  # (kept when it names these classes and more)


def load_feature_extractor(checkpoint: str, *, model: str | None = None, image_size: int | None = None,
                           use_ema: bool = True, probabilities: bool = False,
                           preprocessing: str | None = None) -> tuple[keras.Model, LoadedWeights]:
    """(extractor, loaded): a Keras model mapping images of the
    `loaded.preprocessing` pipeline (B, S, S, 3) to features (B, D) (and,
    with `probabilities`, to the classifier's logits (B, K) too), and what it
    was built from (`fgtf.checkpoints.load_network`'s record without the
    class count: the features are the same with or without the classifier;
    `preprocessing` None: the checkpoint's)."""
    from fgtf.checkpoints import checkpoint_kind, load_network

    if probabilities and checkpoint_kind(checkpoint) == "saved_model":
        raise UserError(f"{checkpoint} is a SavedModel: only its features can be extracted (--outputs features)")
    loaded = load_network(checkpoint, model=model, image_size=image_size, include_top=probabilities,
                          use_ema=use_ema, preprocessing=preprocessing)
    if probabilities and not loaded.num_classes:
        raise UserError(f"{checkpoint} has no classifier, so it gives no probabilities; use --outputs features")
    extractor = loaded.features_model(("features", "logits") if probabilities else ("features",))
    return extractor, dataclasses.replace(loaded, num_classes=None)


def _network_record(loaded: LoadedWeights) -> dict:
    """extract_features.json's `network`: the settings that make features of one network (`NETWORK_SETTINGS`)."""
    return {key: value for key, value in loaded.to_dict().items() if key in NETWORK_SETTINGS}


def extract_paths(extractor, paths, image_size, batch_size, desc="features", preprocessing="inception"):
    """Features (N, D) float32 of the images at `paths`, in order (or a list of
    (N, ·) arrays, one per output of `extractor`): parallel decode + the test
    transform of `preprocessing` in tf.data, one `predict_on_batch` per batch."""
    import tensorflow as tf
    from tqdm import tqdm

    from fgtf.input_pipeline import image_file_dataset

    chunks = []
    iterator = iter(image_file_dataset(paths, image_size=image_size, batch_size=batch_size,
                                       preprocessing=preprocessing))
    with tqdm(total=len(paths), desc=desc, unit="img", disable=None) as bar:
        for start in range(0, len(paths), batch_size):
            try:
                images = next(iterator)
            except tf.errors.InvalidArgumentError:
                raise UserError(f"cannot decode {_first_bad(paths[start:start + batch_size])}; convert it to "
                                f"JPEG/PNG or remove it from the split list") from None
            outputs = extractor.predict_on_batch(images)
            chunks.append([np.asarray(o, np.float32) for o in outputs] if isinstance(outputs, (list, tuple))
                          else np.asarray(outputs, np.float32))
            bar.update(int(images.shape[0]))
    if chunks and isinstance(chunks[0], list):
        return [np.concatenate(parts) for parts in zip(*chunks)]
    return np.concatenate(chunks) if chunks else np.zeros((0, 0), np.float32)


def checkpoint_stem(checkpoint, kind=None):
    """`checkpoints/inception_v3_iNat_299.ckpt` -> `inception_v3_iNat_299`;
    a run's checkpoint prefix (`runs/cub/ckpt-300`) -> its run's name `cub`."""
    path = os.path.normpath(checkpoint)
    if kind == "run" and not os.path.isdir(path):
        path = os.path.dirname(path)
    name = os.path.basename(path)
    for suffix in (".weights.h5", ".h5", ".ckpt", ".index", ".pth.tar", ".pth", ".pt"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name


def _output_list(text):
    """`features,probabilities` -> ('features', 'probabilities') (argparse
    type); features are always written."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in OUTPUTS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown output {unknown[0]!r}; choose from {', '.join(OUTPUTS)}"
                                         if unknown else f"name at least one of {', '.join(OUTPUTS)}")
    return tuple(dict.fromkeys(["features", *names]))


def _softmax(logits):
    """Softmax over the last axis, in float64, stored as float32."""
    shifted = np.asarray(logits, np.float64)
    shifted = np.exp(shifted - shifted.max(axis=1, keepdims=True))
    return (shifted / shifted.sum(axis=1, keepdims=True)).astype(np.float32)


def _split_list(text):
    """`train,val` -> ['train', 'validation'] (argparse type)."""
    splits = [split_name(s.strip()) for s in text.split(",") if s.strip()]
    if not splits:
        raise argparse.ArgumentTypeError("name at least one split: train, validation")
    return list(dict.fromkeys(splits))


def _write_record(folder, record):
    from fgtf.fileio import write_json

    write_json(os.path.join(folder, RECORD), record)


def _extracted(record, folder, name, split, network, data, has_features):
    """True when `name`'s `split` is on disk and was made by `network` from `data`."""
    entry = record.get("features", {}).get(name, {})
    return (record.get("network") == network and split in entry.get("splits", {})
            and all(entry.get(k) == v for k, v in data.items()) and has_features(folder, name, split))


def _check_no_mixing(record, folder, name, todo, network, data, overwrite):
    """Refuse to write features that would sit beside another network's (or
    beside `name`'s features of another dataset folder) in `folder`."""
    from fgtf.transfer.feature_store import has_features

    if not record:
        unrecorded = [s for s in todo if has_features(folder, name, s)]
        if unrecorded and not overwrite:
            raise UserError(f"{folder} holds {name} {', '.join(unrecorded)} features with no record of the network "
                            f"that made them ({RECORD}); pass --overwrite to extract them again, or another --out")
        return
    stored = record.get("network", {})
    if stored != network:
        changed = [k for k in NETWORK_SETTINGS if stored.get(k) != network.get(k)]
        kept = [f"{n} {s}" for n, entry in record.get("features", {}).items() for s in entry.get("splits", {})
                if not (n == name and s in todo)]
        if kept or not overwrite:
            differences = "; ".join(f"{k} {stored.get(k)}, now {network.get(k)}" for k in changed)
            raise UserError(f"{folder} holds features of another network ({differences}); pass another --out"
                            + (f" (its {', '.join(kept)} would be stale)" if kept and overwrite
                               else ", or --overwrite to replace them" if not kept else ""))
        return
    entry = record.get("features", {}).get(name)
    if entry and todo and not overwrite and any(entry.get(k) != v for k, v in data.items()):
        raise UserError(f"{folder} holds {name} features of {entry.get('dataset')} from {entry.get('dataset_dir')}, "
                        f"not of {data['dataset']} from {data['dataset_dir']}; pass another --name, or --overwrite")


def _first_bad(paths):
    import tensorflow as tf

    for path in paths:
        try:
            tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        except tf.errors.InvalidArgumentError:
            return path
    return paths[0]


if __name__ == "__main__":
    main()
