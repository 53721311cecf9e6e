"""Train a backbone (optionally with an FGVC head) on TFRecords under tf.distribute.

    python -m fgtf.train --dataset_name synthetic --dataset_dir data/synthetic/tfrecords \\
        --model_name inception_v3 --train_dir runs/synthetic_v3 --max_number_of_steps 200

The flags mirror the original TF-Slim `train_image_classifier.py` (train.sh sets
them from its environment variables). Each step is Keras's own compiled
`train_step` (so every `keras.Model` head trains unchanged) on every replica; the loop around it
checkpoints the model, the optimizer (with its weight EMA) and the step every
`--save_interval_secs`. The input stream is deterministic for `--seed`, so a
run killed at any moment and started again with the same command resumes at
the same step, optimizer state and data position (finished passes over the
data are skipped without reading them, see `fgtf.input_pipeline.make_dataset`),
and a finished run is not trained again.
"""
import argparse
import math
import os
import sys
import time

from tfrecord_tools.cli import UserError, cli_main

EXIT_DIVERGED = 3


@cli_main
def main(argv=None):
    args = build_parser().parse_args(argv)
    train(args)


def build_parser():
    from fgtf.distribute import STRATEGIES
    from fgtf.optimization import DECAY_TYPES, OPTIMIZERS

    p = argparse.ArgumentParser(prog="python -m fgtf.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("data and model")
    g.add_argument("--dataset_name", default="synthetic", help="dataset registry name (default synthetic)")
    g.add_argument("--dataset_dir", required=True, help="folder of the TFRecord shards written by fgtf.convert")
    g.add_argument("--model_name", default="inception_v3", help="backbone (fgtf.models.list_models())")
    g.add_argument("--num_classes", type=int, help="class count (default: the registry's, else the manifest's)")
    g.add_argument("--train_dir", "--model_dir", dest="train_dir", required=True,
                   help="run folder for checkpoints, summaries and run_config.json")
    g.add_argument("--train_image_size", type=int, default=299)
    g.add_argument("--label_ratio", type=float, help="train on this percent of each class's images (10, 15, 30, 50)")
    g.add_argument("--head", default="none", choices=("none", "sef", "sam", "cle"),
                   help="FGVC head on the backbone's feature map (default none: the slim classifier)")
    g.add_argument("--sef_groups", type=int, default=4, help="SEF channel groups (CUB 4, Aircraft 3, Cars/Dogs 2)")
    g.add_argument("--sam_target", default="cam", choices=("cam", "gradcam"), help="SAM pseudo-attention")
    g.add_argument("--sam_bilinear", default="single", choices=("none", "single", "multi", "compact"),
                   help="SAM-Bilinear pooling form (none: plain SAM)")
    g = p.add_argument_group("initialisation and fine-tuning")
    g.add_argument("--checkpoint_path", help="TF-Slim checkpoint, Keras .weights.h5, or a previous fgtf run folder")
    g.add_argument("--checkpoint_exclude_scopes", default="",
                   help="comma-separated slim scopes not restored, e.g. InceptionV3/Logits,InceptionV3/AuxLogits")
    g.add_argument("--trainable_scopes", default="", help="comma-separated slim scopes to train (default: all)")
    g = p.add_argument_group("optimisation")
    g.add_argument("--optimizer", default="rmsprop", choices=OPTIMIZERS)
    g.add_argument("--learning_rate", type=float, default=0.01)
    g.add_argument("--learning_rate_decay_type", default="exponential", choices=DECAY_TYPES)
    g.add_argument("--learning_rate_decay_factor", type=float, default=0.94)
    g.add_argument("--num_epochs_per_decay", type=float, default=2.0)
    g.add_argument("--end_learning_rate", type=float, default=0.0001)
    g.add_argument("--warmup_epochs", type=float, default=0.0, help="for --learning_rate_decay_type warmup_linear")
    g.add_argument("--momentum", type=float, default=0.9)
    g.add_argument("--rmsprop_decay", type=float, default=0.9)
    g.add_argument("--rmsprop_momentum", type=float, default=0.9)
    g.add_argument("--opt_epsilon", type=float, default=1.0)
    g.add_argument("--adam_beta1", type=float, default=0.9)
    g.add_argument("--adam_beta2", type=float, default=0.999)
    g.add_argument("--weight_decay", type=float, default=0.00004, help="L2 on conv/dense kernels (slim's rule)")
    g.add_argument("--label_smoothing", type=float, default=0.0)
    g.add_argument("--batch_norm_decay", type=float,
                   help="moving-average decay of batch-norm statistics (default: the network's, 0.9997 for "
                        "Inception, 0.997 for ResNet; use ~0.9 for runs of a few hundred steps)")
    g.add_argument("--aux_loss_weight", type=float, default=0.4, help="weight of the aux-logits loss (0 disables)")
    g.add_argument("--moving_average_decay", type=float, help="keep an EMA of the weights (e.g. 0.9999)")
    g.add_argument("--batch_size", type=int, default=32, help="global batch size over all replicas")
    g.add_argument("--max_number_of_steps", type=int, help="train this many steps")
    g.add_argument("--epochs", type=float, help="or this many epochs (steps from the global batch)")
    g.add_argument("--seed", type=int, default=0)
    g = p.add_argument_group("logging and checkpoints")
    g.add_argument("--log_every_n_steps", type=int, default=10)
    g.add_argument("--save_summaries_secs", type=float, default=60)
    g.add_argument("--save_interval_secs", type=float, default=600)
    g.add_argument("--max_checkpoints_to_keep", type=int, default=3)
    g = p.add_argument_group("devices")
    g.add_argument("--strategy", default="default", choices=STRATEGIES)
    g.add_argument("--tpu", help="TPU address for --strategy tpu")
    g.add_argument("--mixed_precision", action="store_true", help="mixed_float16 compute (GPU), float32 losses")
    g.add_argument("--jit_compile", action="store_true", help="compile the train step with XLA")
    return p


def train(args):
    """Run (or resume) the training described by parsed `args`; returns the
    last logged metrics as a dict."""
    _check_args(args)
    import keras
    import tensorflow as tf

    from fgtf import runs
    from fgtf.distribute import is_chief, make_strategy

    if args.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    keras.utils.set_random_seed(args.seed)
    strategy = make_strategy(args.strategy, args.tpu)
    chief = is_chief(strategy)
    num_examples, num_classes = _dataset_facts(args)
    total_steps = args.max_number_of_steps or math.ceil(args.epochs * num_examples / args.batch_size)
    config = _run_config(args, num_classes, num_examples, total_steps)
    os.makedirs(args.train_dir, exist_ok=True)
    if chief:
        runs.save_run_config(args.train_dir, config)

    with strategy.scope():
        model = runs.build_network(config)
        optimizer = _optimizer(args, num_examples, total_steps)
        _prepare_trainable(model, args)
        _compile(model, optimizer, config, args)
        optimizer.build(model.trainable_variables)
        model._symbolic_build(data_batch=_batch_spec(config))
        checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, step=optimizer.iterations,
                                         **{runs.EMA_KEY: runs.ema_map(optimizer)})
    manager = tf.train.CheckpointManager(checkpoint, _checkpoint_dir(args.train_dir, chief, strategy),
                                         max_to_keep=args.max_checkpoints_to_keep)
    if manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        print(f"resumed from {manager.latest_checkpoint} at step {int(optimizer.iterations.numpy())}")
    elif args.checkpoint_path:
        _initialise(model, args, config)
    step = int(optimizer.iterations.numpy())
    if step >= total_steps:
        print(f"{args.train_dir} already finished ({step} of {total_steps} steps); nothing to train")
        return {}
    print(runs.keras_model_summary_line(model) + f"; training steps {step} -> {total_steps}, "
          f"global batch {args.batch_size} on {strategy.num_replicas_in_sync} replica(s)")
    # The input stream is deterministic for the seed; a resumed run skips the
    # examples its steps consumed, which keeps checkpoints small (no shuffle
    # buffers) and the data position exact.
    dataset = strategy.distribute_datasets_from_function(lambda ctx: _train_dataset(args, ctx, step))
    iterator = iter(dataset)
    logs = _loop(model, optimizer, iterator, manager, args, total_steps, chief)
    if chief:
        from fgtf.fileio import write_json

        write_json(os.path.join(args.train_dir, runs.DONE), {"step": total_steps, "metrics": logs})
    _clean_worker_dir(args.train_dir, chief, strategy)
    return logs


def _loop(model, optimizer, iterator, manager, args, total_steps, chief):
    """The training loop: Keras's train function one step at a time, with
    logging, summaries, NaN checks and timed checkpoints."""
    import numpy as np
    import tensorflow as tf

    writer = tf.summary.create_file_writer(os.path.join(args.train_dir, "train")) if chief else None
    train_function = _distributed_train_function(model, args.jit_compile)
    step = int(optimizer.iterations.numpy())
    last_save = last_summary = time.monotonic()
    window_start, window_steps = time.perf_counter(), 0
    logs = {}
    while step < total_steps:
        logs = {k: float(v) for k, v in train_function(iterator).items()}
        step = int(optimizer.iterations.numpy())
        window_steps += 1
        if not np.isfinite(logs["loss"]):
            print(f"error: the loss became {logs['loss']} at step {step}; stopping without saving. The last good "
                  f"checkpoint is {manager.latest_checkpoint or '(none yet)'}; lower --learning_rate or check "
                  f"the data.", file=sys.stderr)
            sys.exit(EXIT_DIVERGED)
        now = time.monotonic()
        last_step = step >= total_steps
        if step % args.log_every_n_steps == 0 or last_step:
            elapsed = time.perf_counter() - window_start
            images_per_sec = window_steps * args.batch_size / max(elapsed, 1e-9)
            learning_rate = float(optimizer.learning_rate)
            metrics = "  ".join(f"{k} {v:.4f}" for k, v in logs.items())
            print(f"step {step}/{total_steps}  {metrics}  lr {learning_rate:.3g}  {images_per_sec:.1f} images/s",
                  flush=True)
            if writer is not None and (now - last_summary >= args.save_summaries_secs or last_step):
                with writer.as_default(step=step):
                    for name, value in logs.items():
                        tf.summary.scalar(name, value)
                    tf.summary.scalar("learning_rate", learning_rate)
                    tf.summary.scalar("images_per_sec", images_per_sec)
                writer.flush()
                last_summary = now
            model.reset_metrics()
            window_start, window_steps = time.perf_counter(), 0
        if now - last_save >= args.save_interval_secs or last_step:
            manager.save(checkpoint_number=step)
            last_save = now
    return logs


def _distributed_train_function(model, jit_compile):
    """One step of Keras's own `model.train_step` on every replica, with the
    logs averaged over replicas. (Keras's `make_train_function` reduces scalar
    logs with `axis=0`, which fails under MultiWorkerMirroredStrategy.)"""
    import tensorflow as tf

    strategy = model.distribute_strategy
    step = tf.function(model.train_step, jit_compile=True, reduce_retracing=True) if jit_compile else model.train_step

    @tf.function(reduce_retracing=True)
    def train_function(iterator):
        logs = strategy.run(step, args=(next(iterator),))
        return tf.nest.map_structure(lambda value: strategy.reduce("MEAN", value, axis=None), logs)

    return train_function


def _check_args(args):
    if args.batch_size < 1:
        raise UserError("--batch_size must be at least 1")
    if (args.max_number_of_steps is None) == (args.epochs is None):
        raise UserError("give exactly one of --max_number_of_steps and --epochs")
    if (args.max_number_of_steps or 1) < 1 or (args.epochs is not None and args.epochs <= 0):
        raise UserError("--max_number_of_steps / --epochs must be positive")
    if args.log_every_n_steps < 1:
        raise UserError("--log_every_n_steps must be at least 1")
    if not os.path.isdir(args.dataset_dir):
        raise UserError(f"--dataset_dir {args.dataset_dir} does not exist; convert the dataset first "
                        f"(python -m fgtf.convert --dataset {args.dataset_name})")
    from fgtf.models import list_models

    if args.model_name not in list_models():
        raise UserError(f"unknown model {args.model_name!r}; known models: {', '.join(list_models())}")


def _dataset_facts(args):
    """(training examples, classes) from the shards' manifest (and registry)."""
    from fgtf.datasets import get_dataset_info
    from tfrecord_tools.manifest import load_manifest

    info = get_dataset_info(args.dataset_name)
    manifest = load_manifest(args.dataset_dir)
    split = (manifest or {}).get("splits", {}).get("train")
    if not split:
        raise UserError(f"{args.dataset_dir} has no train shards listed in manifest.json; convert the dataset "
                        f"with python -m fgtf.convert first")
    num_classes = args.num_classes or info.num_classes or (max(int(k) for k in split["label_histogram"]) + 1)
    num_examples = split["records"]
    if args.label_ratio:
        num_examples = max(int(num_examples * args.label_ratio / 100), num_classes)
    if args.batch_size > num_examples:
        raise UserError(f"--batch_size {args.batch_size} is larger than the {num_examples} training images")
    return num_examples, num_classes


def _run_config(args, num_classes, num_examples, total_steps):
    import inspect

    from fgtf.models import get_builder
    from fgtf.models.common import MIN_AUX_LOGITS_SIZE

    has_aux = ("aux_logits" in inspect.signature(get_builder(args.model_name)).parameters
               and args.train_image_size >= MIN_AUX_LOGITS_SIZE)
    return {"model_name": args.model_name, "num_classes": num_classes, "image_size": args.train_image_size,
            "head": args.head, "head_options": _head_options(args), "aux_logits": bool(has_aux and args.aux_loss_weight > 0 and args.head == "none"),
            "dataset_name": args.dataset_name, "num_train_examples": num_examples, "total_steps": total_steps,
            "batch_size": args.batch_size, "label_smoothing": args.label_smoothing}


def _head_options(args):
    """Keyword arguments of the head's builder (fgtf.models.heads)."""
    if args.head == "sef":
        return {"groups": args.sef_groups}
    if args.head == "sam":
        return {"target": args.sam_target, "bilinear": None if args.sam_bilinear == "none" else args.sam_bilinear}
    if args.head == "cle":
        from fgtf.models.heads import cle_loss_weights

        return {"loss_weights": list(cle_loss_weights(args.dataset_name))}
    return {}


def _optimizer(args, num_examples, total_steps):
    from fgtf.optimization import SlimLearningRate, decay_steps_for, make_optimizer, steps_per_epoch

    schedule = SlimLearningRate(
        args.learning_rate, args.learning_rate_decay_type,
        decay_steps=decay_steps_for(num_examples, args.batch_size, args.num_epochs_per_decay),
        decay_factor=args.learning_rate_decay_factor, end_learning_rate=args.end_learning_rate,
        warmup_steps=int(args.warmup_epochs * steps_per_epoch(num_examples, args.batch_size)),
        total_steps=total_steps)
    return make_optimizer(args.optimizer, schedule, momentum=args.momentum, rmsprop_decay=args.rmsprop_decay,
                          rmsprop_momentum=args.rmsprop_momentum, opt_epsilon=args.opt_epsilon,
                          adam_beta1=args.adam_beta1, adam_beta2=args.adam_beta2,
                          moving_average_decay=args.moving_average_decay)


def _prepare_trainable(model, args):
    import keras

    from fgtf.optimization import apply_weight_decay, freeze_outside_scopes

    if args.trainable_scopes:
        freeze_outside_scopes(model, args.trainable_scopes)
    apply_weight_decay(model, args.weight_decay)
    if args.batch_norm_decay is not None:
        for layer in model._flatten_layers(include_self=False, recursive=True):
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = args.batch_norm_decay


def _compile(model, optimizer, config, args):
    import keras

    from fgtf.losses import SparseCrossentropy

    loss = SparseCrossentropy(label_smoothing=config["label_smoothing"])
    top5 = keras.metrics.SparseTopKCategoricalAccuracy(k=min(5, config["num_classes"]), name="top5")
    if config["head"] == "cle":  # its losses (label-smoothed CE on both views + contrastive) are built in
        model.compile(optimizer, metrics=["accuracy", top5], jit_compile=args.jit_compile)
    elif config["aux_logits"]:
        model.compile(optimizer, loss=[loss, loss], loss_weights=[1.0, args.aux_loss_weight],
                      metrics=[["accuracy", top5], []], jit_compile=args.jit_compile)
    else:
        model.compile(optimizer, loss=loss, metrics=["accuracy", top5], jit_compile=args.jit_compile)


def _batch_spec(config):
    import tensorflow as tf

    size = config["image_size"]
    images = tf.TensorSpec((None, size, size, 3), tf.float32)
    if config["head"] == "cle":
        images = (images, images)
    return images, tf.TensorSpec((None,), tf.int32)


def _train_dataset(args, input_context, start_step):
    from fgtf.input_pipeline import make_dataset

    preprocessing = "inception"
    if args.head == "cle":  # two views per image: a base augmentation and its shuffled, masked twin
        from fgtf.cle_augment import cle_preprocessing

        preprocessing = cle_preprocessing()
    return make_dataset(args.dataset_dir, "train", image_size=args.train_image_size, batch_size=args.batch_size,
                        training=True, input_context=input_context, seed=args.seed, deterministic=True,
                        label_ratio=args.label_ratio, start_step=start_step, preprocessing=preprocessing)


def _initialise(model, args, config):
    """Start from --checkpoint_path: a previous fgtf run, or backbone weights."""
    from fgtf import runs
    from fgtf.checkpoints import load_weights

    path = args.checkpoint_path
    if runs.is_run_checkpoint(path):
        prefix = runs.latest_checkpoint(path)
        if prefix is None:
            raise UserError(f"{path} holds no checkpoint yet")
        runs.restore_for_inference(model, prefix)
        print(f"initialised from fgtf run checkpoint {prefix}")
        return
    backbone = runs.backbone_of(model)
    load_weights(backbone, path, exclude_scopes=args.checkpoint_exclude_scopes)
    print(f"initialised {backbone.name} from {path}"
          + (f" (excluding {args.checkpoint_exclude_scopes})" if args.checkpoint_exclude_scopes else ""))


def _checkpoint_dir(train_dir, chief, strategy):
    """Non-chief workers of a multi-worker run save into a scratch folder (all
    workers must take part in saving; only the chief's copy is kept)."""
    if chief:
        return train_dir
    return os.path.join(train_dir, f".worker_{strategy.cluster_resolver.task_id}")


def _clean_worker_dir(train_dir, chief, strategy):
    if not chief:
        import shutil

        shutil.rmtree(_checkpoint_dir(train_dir, chief, strategy), ignore_errors=True)


if __name__ == "__main__":
    main()
