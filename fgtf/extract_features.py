"""Extract per-image features: the spatial mean of a backbone's feature end
point on the evaluation preprocessing, as the original `feature_extraction.py`
(but batched through tf.data, never one image at a time).

    python -m fgtf.extract_features --dataset cub_200 --model inception_v3 \\
        --checkpoint checkpoints/inception_v3_iNat_299.ckpt

writes `feature/<model_name>/<dataset>_feature_{train,val}.npy`,
`_label_{train,val}.npy` and `_path_{train,val}.txt` (rows in the order of the
split list), where `model_name` is the checkpoint's file stem. The checkpoint
is a TF-Slim checkpoint (EMA shadows used when present), a Keras
`.weights.h5`, an fgtf training run folder (its EMA weights when kept), or a
local SavedModel / TF-Hub image feature-vector folder. A split whose files
exist is not extracted again (use --overwrite).
"""
import argparse
import os

import numpy as np

from tfrecord_tools.cli import UserError, cli_main


@cli_main
def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m fgtf.extract_features", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True, help="dataset registry name (e.g. cub_200, synthetic)")
    p.add_argument("--dataset_dir", help="raw dataset folder (default: <data_dir>/<dataset>)")
    p.add_argument("--data_dir", default="data", help="parent of dataset folders (default ./data)")
    p.add_argument("--model", default="inception_v3", help="backbone name (ignored for SavedModel/Hub folders)")
    p.add_argument("--checkpoint", required=True, help="slim .ckpt, .weights.h5, fgtf run folder or SavedModel folder")
    p.add_argument("--model_name", help="output subfolder name (default: the checkpoint's file stem)")
    p.add_argument("--name", help="dataset name in the feature file names (default: --dataset), e.g. to keep "
                                  "two synthetic datasets apart")
    p.add_argument("--image_size", type=int, default=299)
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--splits", default="train,validation", help="comma-separated: train, validation")
    p.add_argument("--out", default="feature", help="feature root folder (default ./feature)")
    p.add_argument("--overwrite", action="store_true", help="extract splits whose files already exist")
    args = p.parse_args(argv)
    splits = [s.strip() for s in args.splits.split(",") if s.strip()]
    for split in splits:
        if split not in ("train", "validation"):
            raise UserError(f"unknown split {split!r}; splits are train, validation")
    if args.batch_size < 1 or args.image_size < 32:
        raise UserError("--batch_size must be >= 1 and --image_size >= 32")
    extract(args.dataset, args.dataset_dir or os.path.join(args.data_dir, args.dataset), args.model,
            args.checkpoint, splits, out=args.out, model_name=args.model_name, image_size=args.image_size,
            batch_size=args.batch_size, overwrite=args.overwrite, name=args.name)


def extract(dataset, dataset_dir, model, checkpoint, splits=("train", "validation"), *, out="feature",
            model_name=None, image_size=299, batch_size=64, overwrite=False, name=None):
    """Extract and save the features of `splits` of `dataset` (read from
    `dataset_dir`) under `<out>/<model_name>/<name>_feature_*.npy`; returns
    that folder."""
    from fgtf.datasets import read_split
    from fgtf.transfer.feature_store import has_features, save_features

    if not os.path.exists(checkpoint) and not os.path.exists(checkpoint + ".index"):
        raise UserError(f"checkpoint {checkpoint} not found")
    folder = os.path.join(out, model_name or checkpoint_stem(checkpoint))
    name = name or dataset
    todo = [s for s in splits if overwrite or not has_features(folder, name, s)]
    if not todo:
        print(f"{folder}: features of {', '.join(splits)} already exist")
        return folder
    extractor = feature_extractor(model, checkpoint, image_size)
    for split in todo:
        records = read_split(dataset, dataset_dir, split)
        paths = [r.path for r in records]
        features = extract_paths(extractor, paths, image_size, batch_size, desc=f"{name}/{split}")
        save_features(folder, name, split, features, [r.label for r in records], paths)
        print(f"{name}/{split}: {features.shape[0]} x {features.shape[1]} features -> {folder}")
    return folder


def feature_extractor(model, checkpoint, image_size):
    """A Keras model mapping images in [-1, 1] (B, S, S, 3) to features (B, D)."""
    import keras

    from fgtf import runs
    from fgtf.checkpoints import hub_feature_model, is_saved_model
    from fgtf.models import build_model, feature_endpoint

    if is_saved_model(checkpoint):
        return hub_feature_model(checkpoint, image_size)
    if runs.is_run_checkpoint(checkpoint):
        config = runs.load_run_config(checkpoint if os.path.isdir(checkpoint) else os.path.dirname(checkpoint))
        network = runs.build_network({**config, "image_size": image_size})
        runs.restore_for_inference(network, runs.latest_checkpoint(checkpoint))
        source = runs.backbone_of(network)
        endpoint = source.get_layer(feature_endpoint(config["model_name"]))
    else:
        source = build_model(model, include_top=False, weights=checkpoint, input_shape=(image_size, image_size, 3))
        endpoint = source.get_layer(feature_endpoint(model))
    pooled = keras.layers.GlobalAveragePooling2D(name="features")(endpoint.output)
    return keras.Model(source.inputs, pooled, name=f"{source.name}_features")


def extract_paths(extractor, paths, image_size, batch_size, desc="features"):
    """Features (N, D) float32 of the images at `paths`, in order: parallel
    decode + evaluation preprocessing in tf.data, one `predict_on_batch` per batch."""
    import tensorflow as tf
    from tqdm import tqdm

    from fgtf.preprocessing import preprocess_for_eval

    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise UserError(f"{len(missing)} images are missing, e.g. {missing[0]}")
    dataset = (tf.data.Dataset.from_tensor_slices(paths)
               .map(lambda path: preprocess_for_eval(tf.io.read_file(path), image_size),
                    num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
               .batch(batch_size)
               .prefetch(tf.data.AUTOTUNE))
    chunks = []
    iterator = iter(dataset)
    with tqdm(total=len(paths), desc=desc, unit="img", disable=None) as bar:
        for start in range(0, len(paths), batch_size):
            try:
                images = next(iterator)
            except tf.errors.InvalidArgumentError:
                raise UserError(f"cannot decode {_first_bad(paths[start:start + batch_size])}; convert it to "
                                f"JPEG/PNG or remove it from the split list") from None
            chunks.append(np.asarray(extractor.predict_on_batch(images), np.float32))
            bar.update(len(chunks[-1]))
    return np.concatenate(chunks) if chunks else np.zeros((0, 0), np.float32)


def checkpoint_stem(checkpoint):
    """`checkpoints/inception_v3_iNat_299.ckpt` -> `inception_v3_iNat_299`."""
    name = os.path.basename(os.path.normpath(checkpoint))
    for suffix in (".weights.h5", ".h5", ".ckpt", ".index"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name


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
