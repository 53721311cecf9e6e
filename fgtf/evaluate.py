"""Evaluate a network's classifier on the validation split of TFRecord shards.

    python -m fgtf.evaluate --checkpoint runs/synthetic_v3 --dataset_dir data/synthetic/tfrecords
    python -m fgtf.evaluate --checkpoint checkpoints/inception_v3_iNat_299.ckpt --dataset_dir data/inat2017

`--checkpoint` is an fgtf run folder (its latest checkpoint, or a given
checkpoint prefix of it, with the run's EMA weights when it kept them, at
the run's image size and class count), a TF-Slim checkpoint of `--model`
(EMA shadows when present), an fgtf `.weights.h5`, or a SavedModel with a
`logits` signature (as `python -m fgtf.export` writes one with a
classifier; fed at the size of its model card); what was loaded is
printed. Images go through the run's `--preprocessing` pipeline (a
SavedModel's card's, else the network's), test transform; `--eval_views 10`
sums the logits of SAM's ten views instead (five crops and their mirror
images; each view of a batch is one forward pass, so a head that
normalises over the batch, as SAM's, sees the batch as SAM's test does
with `--batch_size 4`). Reports top-1, top-5, mean per-class accuracy and loss. With
`--eval_interval_secs N > 0` it keeps watching a run folder and evaluates
every new checkpoint (eval.sh). Writes `<out>/eval_results.json` (with the
settings used), `confusion_matrix.png`, `per_class_accuracy.csv` and
TensorBoard summaries.
"""
from __future__ import annotations
import os

import numpy as np

from fgtf.command_line import (add_network_flags, cli_main, command_parser, positive_float, positive_int,
                               split_name)
from fgtf.errors import UserError
from fgtf.metrics import classification_metrics


@cli_main
def main(argv=None):
    from fgtf.preprocessing import EVAL_VIEWS

    p = command_parser(__name__, __doc__)
    add_network_flags(p, saved_model=" (or one checkpoint prefix of a run), or a SavedModel classifier (python -m "
                                     "fgtf.export's, with logits; a program that runs in this process: only one you "
                                     "trust)",
                      checkpoint_aliases=("--checkpoint_path", "--model_dir"), image_size_aliases=("--eval_image_size",))
    p.add_argument("--dataset_dir", required=True,
                   help="folder of the TFRecord shards, or the dataset folder whose tfrecords/ subfolder holds them")
    p.add_argument("--out", "--eval_dir", dest="eval_dir", metavar="DIR",
                   help="where results go (default: <run folder>/eval, else eval/<checkpoint stem>)")
    p.add_argument("--split", default="validation", type=split_name,
                   help="split to evaluate: validation (or val), train")
    p.add_argument("--batch_size", type=positive_int, default=50, help="images per evaluation batch")
    p.add_argument("--eval_views", type=int, choices=EVAL_VIEWS, default=1,
                   help="test views per image whose logits are summed: 1, or SAM's 10 (needs --preprocessing sam)")
    p.add_argument("--eval_interval_secs", type=float, default=0,
                   help="> 0: keep evaluating each new checkpoint, polling this often")
    p.add_argument("--timeout_secs", type=positive_float,
                   help="with --eval_interval_secs: stop after this long without a new checkpoint")
    p.add_argument("--skip_bad_records", action="store_true",
                   help="leave out records that do not parse or decode (each is logged) instead of stopping")
    args = p.parse_args(argv)
    if not os.path.isdir(args.dataset_dir):
        raise UserError(f"--dataset_dir {args.dataset_dir} does not exist")
    options = {"split": args.split, "model": args.model, "image_size": args.image_size,
               "use_ema": args.use_ema, "batch_size": args.batch_size,
               "skip_bad_records": args.skip_bad_records, "eval_dir": args.eval_dir,
               "preprocessing": args.preprocessing, "eval_views": args.eval_views}
    if args.eval_interval_secs > 0:
        watch(args.checkpoint, args.dataset_dir, interval_secs=args.eval_interval_secs,
              timeout_secs=args.timeout_secs, **options)
    else:
        evaluate_checkpoint(args.checkpoint, args.dataset_dir, **options)


def evaluate_checkpoint(checkpoint: str, dataset_dir: str, *, split: str = "validation", model: str | None = None,
                        image_size: int | None = None, use_ema: bool = True, batch_size: int = 50,
                        skip_bad_records: bool = False, eval_dir: str | None = None, preprocessing: str | None = None,
                        eval_views: int = 1) -> dict:
    """Evaluate the network of `checkpoint` (any kind `fgtf.checkpoints.load_network`
    takes, with its classifier) on the `split` of the shards in `dataset_dir`;
    print and write the results; return them as a dict.

    model: the backbone of a TF-Slim checkpoint (a run's or fgtf
        `.weights.h5`'s own network otherwise).
    image_size: the image side (default: the run's training size, a
        SavedModel's model card's, else the network's default).
    use_ema: the moving averages of the weights when the checkpoint kept them.
    eval_dir: where results go (default: <run folder>/eval, else
        eval/<checkpoint stem>).
    preprocessing: the input pipeline (default: the run's, a SavedModel's
        card's, else the network's).
    eval_views: 1, or 10 to sum the logits of SAM's ten test views.
    Raises UserError for data or weights that do not fit."""
    import tensorflow as tf

    from fgtf import runs
    from fgtf.checkpoints import checkpoint_kind, describe, load_network
    from fgtf.datasets.lists import shard_class_names
    from fgtf.extract_features import checkpoint_stem
    from fgtf.bad_records import bad_record_message
    from fgtf.input_pipeline import shard_folder, split_labels
    from fgtf.plots import confusion_matrix_png
    from fgtf.preprocessing import EVAL_VIEWS, get_pipeline

    if eval_views not in EVAL_VIEWS:
        raise UserError(f"eval_views must be 1 or 10, got {eval_views}")
    kind = checkpoint_kind(checkpoint)
    shard_dir = shard_folder(dataset_dir)
    _, histogram = split_labels(shard_dir, split)
    loaded = load_network(checkpoint, model=model, image_size=image_size, use_ema=use_ema,
                          preprocessing=preprocessing)
    pipeline = get_pipeline(loaded.preprocessing)
    views = pipeline.ten_views() if eval_views == 10 else pipeline
    from_run = [name for name, given in (("image size", image_size), ("preprocessing", preprocessing))
                if given is None] + ["classes"]
    image_size, num_classes, prefix = loaded.image_size, loaded.num_classes, loaded.weights
    if histogram and min(histogram) < 0:
        raise UserError(f"{shard_dir} has the {split} label {min(histogram)}; labels number the classes from 0")
    if histogram and max(histogram) >= num_classes:
        raise UserError(f"{shard_dir} has {split} labels up to {max(histogram)} but {checkpoint} has "
                        f"{num_classes} classes; evaluate it on data of its own classes")
    data_classes = len(histogram)
    print(f"evaluating {checkpoint} on the {split} split of {shard_dir}"
          + (f" (its labels cover {data_classes} of the network's {num_classes} classes)"
             if data_classes != num_classes else "") + f": {describe(loaded, from_run)}")
    try:
        logits, labels = predict_logits(loaded.network, shard_dir, split, image_size, batch_size,
                                        skip_bad_records=skip_bad_records, preprocessing=views)
    except tf.errors.InvalidArgumentError as error:
        message = bad_record_message(error, shard_dir)
        if message is None:
            raise
        raise UserError(message) from None
    results = classification_metrics(logits, labels, num_classes)
    step = runs.checkpoint_step(prefix) if kind == "run" else 0
    class_names = shard_class_names(shard_dir, num_classes) or (
        runs.load_class_names(_run_dir(checkpoint), num_classes) if kind == "run" else None)
    results.update({"checkpoint": prefix, "kind": kind, "step": step, "ema_weights": loaded.ema,
                    "split": split, "num_images": int(len(labels)), "image_size": image_size,
                    "num_classes": num_classes, "model_name": loaded.model, "dataset_dir": shard_dir,
                    "class_names": class_names, "preprocessing": loaded.preprocessing, "eval_views": eval_views})
    eval_dir = eval_dir or (os.path.join(_run_dir(checkpoint), "eval") if kind == "run"
                            else os.path.join("eval", checkpoint_stem(checkpoint)))
    _write_results(eval_dir, results, step)
    confusion_matrix_png(results.pop("confusion_matrix"), os.path.join(eval_dir, "confusion_matrix.png"),
                         class_names=class_names,
                         title=f"{loaded.model} step {step}: top-1 {results['top1']:.3f}")
    print(f"step {step}: top-1 {results['top1']:.4f}  top-5 {results['top5']:.4f}  "
          f"mean per-class {results['mean_per_class_accuracy']:.4f}  loss {results['loss']:.4f}  "
          f"({results['num_images']} images{', EMA weights' if loaded.ema else ''}"
          f"{f', {eval_views} views summed' if eval_views > 1 else ''})")
    print(f"wrote {os.path.join(eval_dir, 'eval_results.json')}")
    return results


def predict_logits(model, dataset_dir, split, image_size, batch_size, skip_bad_records=False,
                   preprocessing="inception"):
    """Logits (N, C) of the first output and labels (N,) over a whole split, in
    record order, batched through tf.data and `predict_on_batch`.
    `preprocessing`: a pipeline name or callable, as
    `fgtf.input_pipeline.PipelineSettings` takes it; one that gives several views
    per image (B, V, S, S, 3) gets the sum of the views' logits, each view of
    a batch in one forward pass."""
    from fgtf.input_pipeline import PipelineSettings, ReadSettings, make_dataset

    dataset = make_dataset(dataset_dir, split, PipelineSettings(image_size=image_size, batch_size=batch_size,
                                                                training=False, preprocessing=preprocessing),
                           ReadSettings(skip_bad_records=skip_bad_records))
    all_logits, all_labels = [], []
    for images, labels in dataset:
        views = [images[:, k] for k in range(images.shape[1])] if images.shape.rank == 5 else [images]
        all_logits.append(sum(_first_output(model.predict_on_batch(view)) for view in views))
        all_labels.append(np.asarray(labels))
    if not all_labels:
        raise UserError(f"{dataset_dir} has no {split} records")
    return np.concatenate(all_logits), np.concatenate(all_labels).astype(np.int64)


def _first_output(outputs):
    """The logits of a network's outputs (aux logits, if any, come second)."""
    return np.asarray(outputs[0] if isinstance(outputs, (list, tuple)) else outputs, np.float32)


def watch(run_dir, dataset_dir, *, interval_secs, timeout_secs=None, **evaluation):
    """Evaluate every new checkpoint of the run folder `run_dir` as it appears
    (eval.sh), polling every `interval_secs`, until the training has
    finished or, with `timeout_secs`, that long passed without a new one;
    `evaluation`: `evaluate_checkpoint`'s keyword arguments."""
    import tensorflow as tf

    if not os.path.isdir(run_dir):
        raise UserError(f"run folder {run_dir} does not exist; watching needs the folder the training writes to")
    if os.path.isfile(os.path.join(run_dir, "saved_model.pb")) or not _may_be_run(run_dir):
        raise UserError(f"{run_dir} is not an fgtf run folder; --eval_interval_secs watches the run folder a "
                        f"training writes to")
    if tf.train.latest_checkpoint(run_dir) is None:
        print(f"waiting for the first checkpoint in {run_dir} (every {interval_secs:g} s"
              + (f", for at most {timeout_secs:g} s)" if timeout_secs else ")"), flush=True)
    for prefix in tf.train.checkpoints_iterator(run_dir, min_interval_secs=interval_secs, timeout=timeout_secs):
        evaluate_checkpoint(prefix, dataset_dir, **evaluation)
        if os.path.isfile(os.path.join(run_dir, "train_done.json")) and prefix == tf.train.latest_checkpoint(run_dir):
            print("training has finished; stopping")
            return


def _write_results(eval_dir, results, step):
    import tensorflow as tf

    from fgtf.fileio import write_json, write_text

    names = results["class_names"] or [str(c) for c in range(len(results["per_class_accuracy"]))]
    write_json(os.path.join(eval_dir, "eval_results.json"), results)
    write_text(os.path.join(eval_dir, "per_class_accuracy.csv"), "class,name,accuracy\n" + "".join(
        f"{c},{_csv_field(name)},{'' if a is None else f'{a:.6f}'}\n"
        for c, (name, a) in enumerate(zip(names, results["per_class_accuracy"]))))
    with tf.summary.create_file_writer(eval_dir).as_default(step=step):
        for name in ("top1", "top5", "mean_per_class_accuracy", "loss"):
            tf.summary.scalar(f"eval/{name}", results[name])


def _csv_field(text):
    return f'"{text.replace(chr(34), chr(34) * 2)}"' if any(c in text for c in ',"\n') else text


def _run_dir(path):
    return path if os.path.isdir(path) else os.path.dirname(path)


def _may_be_run(folder):
    """A folder that is, or is about to become, a training run: its
    run_config.json is there, or nothing is there yet."""
    from fgtf import runs

    return os.path.isfile(os.path.join(folder, runs.RUN_CONFIG)) or not any(
        name.endswith(".index") for name in os.listdir(folder))


if __name__ == "__main__":
    main()
