"""The training loop of `fgtf train` (the command's flags and recipes are
in `fgtf.train`): `train(config)` builds the run's network, optimizer and
input stream from a `fgtf.train_config.TrainConfig`, trains it under a
tf.distribute strategy with Keras's own compiled `train_step`, checkpoints
the model, optimizer (with its weight EMA) and step, evaluates during
training when asked, and resumes exactly where a killed run stopped.

    from fgtf.train_config import TrainConfig
    from fgtf.training import train
    train(TrainConfig.from_dict({"data": {"dataset_dir": "data/cub_200"}, "run": {"run_dir": "runs/cub"},
                                 "schedule": {"epochs": 30}}))
"""
import functools
import inspect
import math
import os
import re
import shutil
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from fgtf import runs
from fgtf._keras_internals import flatten_layers, symbolic_build
from fgtf.bad_records import bad_record_message
from fgtf.checkpoints import (DEFAULT_MODEL, RecordedNetwork, checkpoint_kind, describe, load_into, recorded_network,
                              saved_model_refusal)
from fgtf.datasets import get_dataset_info
from fgtf.datasets.lists import shard_class_names
from fgtf.distribute import is_chief, make_strategy
from fgtf.errors import ParameterError, TrainingDiverged, UserError
from fgtf.fileio import write_json
from fgtf.input_pipeline import PipelineSettings, ReadSettings, make_dataset, shard_folder, split_labels
from fgtf.losses import Float32TopK, SparseCrossentropy
from fgtf.models import default_image_size, default_preprocessing, get_builder, has_aux_logits, list_models
from fgtf.models.heads import NO_HEAD, head_options, head_record, imported
from fgtf.models.layers import freeze_outside_scopes, layer_scopes, scope_list, variables_in_scopes
from fgtf.models.weights import unreadable_reason
from fgtf.optimization import (apply_weight_decay, decay_steps_for, learning_rate_schedule, make_optimizer,
                               steps_per_epoch)
from fgtf.optimizer_choices import DEFAULT_WEIGHT_DECAY, default_weight_decay_mode
from fgtf.preprocessing import get_pipeline, preprocess_image
from fgtf.runs import RunConfig
from fgtf.train_config import TrainConfig
from fgtf.train_eval import BEST, EvaluationSchedule, TrainingEvaluator
from tfrecord_tools.atomic import remove_temporaries
from tfrecord_tools.folder_lock import hold_folder

# Settings a run folder is bound to: continuing it with others is refused.
RUN_SETTINGS = ("model_name", "num_classes", "head", "head_options", "optimizer", "image_size", "batch_size",
                "preprocessing")
# What a SavedModel cannot be: an opaque graph has no fgtf layers to copy.
START_WEIGHTS = "a training run's start weights"


def train(settings: TrainConfig) -> dict:
    """Run (or resume) the training described by `settings`, a `TrainConfig`
    (`TrainConfig.from_flags(build_parser().parse_args(argv))` for a command
    line); returns the last logged metrics as a dict. Raises `UserError` for a
    mistake (before anything is written; `FolderBusy` when another process
    trains in the run folder) and `TrainingDiverged` when the loss is not
    finite."""
    _check_settings(settings)
    settings, from_run = _settings_from_runs(settings)
    _check_drop_path(settings)

    shard_dir = shard_folder(settings.data.dataset_dir)
    num_examples, num_classes = _dataset_facts(settings, shard_dir)
    if settings.evaluation.enabled:
        _check_evaluation(settings, shard_dir, num_classes)
    course = settings.schedule
    total_steps = course.max_number_of_steps or math.ceil(course.epochs * num_examples / course.batch_size)
    config = _run_config(settings, num_classes, num_examples, total_steps)
    if settings.run.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    keras.utils.set_random_seed(settings.run.seed)
    strategy = make_strategy(settings.run.strategy, settings.run.tpu)
    _check_batches_split(settings, strategy.num_replicas_in_sync)
    chief = is_chief(strategy)
    checkpoint_dir = _checkpoint_dir(settings.run.run_dir, chief, strategy)
    # One process per run folder (each worker of a multi-worker run holds its own).
    with hold_folder(checkpoint_dir):
        _check_same_run(settings.run.run_dir, config)
        _remove_leftovers(checkpoint_dir)
        with strategy.scope():
            model = runs.build_network(config)
            optimizer = prepare_optimization(model, settings, num_examples, total_steps)
            _compile(model, optimizer, config, settings)
            optimizer.build(model.trainable_variables)
            symbolic_build(model, _batch_spec(config))
            checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, step=optimizer.iterations,
                                             **{runs.EMA_KEY: runs.ema_map(optimizer)})
        manager = _restore_latest_readable(checkpoint, checkpoint_dir, settings.run.max_checkpoints_to_keep)
        if manager.latest_checkpoint:
            print(f"resumed from {manager.latest_checkpoint} at step {int(optimizer.iterations.numpy())}")
        else:
            if settings.fine_tuning.checkpoint:
                _initialise(model, settings, from_run)
            optimizer.reset_moving_averages()  # the EMA starts at the start weights, as TF1's
        step = int(optimizer.iterations.numpy())
        class_names = shard_class_names(shard_dir, num_classes)
        # Created at the first summary, then shared: TensorBoard reads only the newest event file of a folder.
        writer = functools.cache(lambda: tf.summary.create_file_writer(os.path.join(settings.run.run_dir, "train")))
        evaluator = _evaluator(model, optimizer, settings, shard_dir, config, class_names, writer, chief,
                               num_examples, total_steps) if settings.evaluation.enabled else None
        try:
            if evaluator and evaluator.pending(step):  # stopped after this checkpoint, before its evaluation
                evaluator.run(step, manager.latest_checkpoint)
            if step >= total_steps:
                print(f"{settings.run.run_dir} already finished ({step} of {total_steps} steps); nothing to train")
                _print_evaluations(evaluator, chief)
                return {}
            print(runs.keras_model_summary_line(model) + f"; training steps {step} -> {total_steps}, "
                  f"global batch {settings.schedule.batch_size} on {strategy.num_replicas_in_sync} replica(s)")
            # The input stream is deterministic for the seed; a resumed run skips the
            # examples its steps consumed, which keeps checkpoints small (no shuffle
            # buffers) and the data position exact.
            dataset = strategy.distribute_datasets_from_function(
                lambda ctx: _labels_per_output(_train_dataset(settings, shard_dir, ctx, step), config))
            iterator = iter(dataset)
            logs = _loop(model, optimizer, iterator, manager, settings, total_steps, config if chief else None,
                         class_names, writer, evaluator)
        except tf.errors.InvalidArgumentError as error:
            message = bad_record_message(error, shard_dir)
            if message is None:
                raise
            raise UserError(message) from None
        _print_evaluations(evaluator, chief)
        if chief:
            write_json(os.path.join(settings.run.run_dir, runs.DONE), {"step": total_steps, "metrics": logs})
        _clean_worker_dir(settings.run.run_dir, chief, strategy)
        return logs


def _save(manager, run_dir, config, step, class_names=None):
    """Checkpoint at `step`. The run's `config` (None on workers that are not
    the chief) is written with the run's first checkpoint: just before it,
    and removed again when that save fails, so that run_config.json only
    stands beside a checkpoint (a leftover of a start killed mid-save is
    ignored, see `fgtf.runs.has_checkpoint`); so are the `class_names` of
    its data, when they are known (classes.txt)."""
    first = config is not None and manager.latest_checkpoint is None
    if first:
        runs.save_run_config(run_dir, config)
        if class_names is not None:
            runs.save_class_names(run_dir, class_names)
    try:
        manager.save(checkpoint_number=step)
    except BaseException:
        if first:
            runs.remove_run_config(run_dir)
        raise


def _restore_latest_readable(checkpoint, checkpoint_dir, max_to_keep):
    """A CheckpointManager of `checkpoint_dir` whose latest checkpoint, if it
    has one, is restored into `checkpoint`: the newest that reads whole. A
    torn one (its files cut short by a crash or a full disk) is said, removed
    and the one before it tried."""
    while True:
        manager = tf.train.CheckpointManager(checkpoint, checkpoint_dir, max_to_keep=max_to_keep)
        prefix = manager.latest_checkpoint
        if prefix is None:
            return manager
        try:
            checkpoint.restore(prefix).assert_existing_objects_matched()
            return manager
        except (tf.errors.OpError, IndexError) as error:  # a short data file reads as an IndexError
            reason = unreadable_reason(error)
        earlier = manager.checkpoints[:-1]
        print(f"{prefix} is unreadable ({reason}); removing it and resuming from "
              f"{earlier[-1] if earlier else 'the start'}", file=sys.stderr)
        for name in os.listdir(checkpoint_dir):
            if name.startswith(os.path.basename(prefix) + "."):
                os.remove(os.path.join(checkpoint_dir, name))
        if earlier:  # names relative to the folder, as the manager writes them (the run may move)
            tf.compat.v1.train.update_checkpoint_state(checkpoint_dir, os.path.basename(earlier[-1]),
                                                       [os.path.basename(path) for path in earlier])
        else:
            os.remove(os.path.join(checkpoint_dir, "checkpoint"))


def _remove_leftovers(checkpoint_dir):
    """Delete what killed runs left in the folder (held by this process, so
    none of it is being written): TensorFlow's checkpoint temporaries
    (`ckpt-N_temp/`, `checkpoint.tmp<hex>`) and fgtf's atomic temporaries,
    also in the best checkpoint's folder."""
    for folder in (checkpoint_dir, os.path.join(checkpoint_dir, BEST)):
        if not os.path.isdir(folder):
            continue
        for name in os.listdir(folder):
            if re.fullmatch(r"ckpt-\d+_temp", name):
                shutil.rmtree(os.path.join(folder, name), ignore_errors=True)
            elif re.fullmatch(r"checkpoint\.tmp[0-9a-f]+", name):
                os.remove(os.path.join(folder, name))
        remove_temporaries(folder)


def _loop(model, optimizer, iterator, manager, settings, total_steps, chief_config, class_names=None, writer=None,
          evaluator=None):
    """The training loop: Keras's train function one step at a time, with
    logging, summaries, NaN checks, timed checkpoints and, with an
    `evaluator` (`fgtf.train_eval.TrainingEvaluator`), a checkpoint and an
    evaluation at each step it is due; `chief_config` is the run's config on
    the chief (which writes it and the data's `class_names`, see `_save`,
    and its summaries with `writer()`), else None."""
    train_function = _distributed_train_function(model, settings.run.jit_compile)
    step = int(optimizer.iterations.numpy())
    last_save = last_summary = time.monotonic()
    window_start, window_steps = time.perf_counter(), 0
    logs = {}
    while step < total_steps:
        logs = {k: float(v) for k, v in train_function(iterator).items()}
        step = int(optimizer.iterations.numpy())
        window_steps += 1
        if not np.isfinite(logs["loss"]):
            raise TrainingDiverged(
                f"the loss became {logs['loss']} at step {step}; stopping without saving. The last good "
                f"checkpoint is {manager.latest_checkpoint or '(none yet)'}; lower --learning_rate or check "
                f"the data.")
        now = time.monotonic()
        last_step = step >= total_steps
        if step % settings.run.log_every_n_steps == 0 or last_step:
            elapsed = time.perf_counter() - window_start
            images_per_sec = window_steps * settings.schedule.batch_size / max(elapsed, 1e-9)
            learning_rate = float(optimizer.learning_rate)
            metrics = "  ".join(f"{k} {v:.4f}" for k, v in logs.items())
            print(f"step {step}/{total_steps}  {metrics}  lr {learning_rate:.3g}  {images_per_sec:.1f} images/s",
                  flush=True)
            if chief_config is not None and (now - last_summary >= settings.run.save_summaries_secs or last_step):
                with writer().as_default(step=step):
                    for name, value in logs.items():
                        tf.summary.scalar(name, value)
                    tf.summary.scalar("learning_rate", learning_rate)
                    tf.summary.scalar("images_per_sec", images_per_sec)
                writer().flush()
                last_summary = now
            model.reset_metrics()
            window_start, window_steps = time.perf_counter(), 0
        evaluation_due = evaluator is not None and evaluator.schedule.is_due(step)
        if now - last_save >= settings.run.save_interval_secs or last_step or evaluation_due:
            _save(manager, settings.run.run_dir, chief_config, step, class_names)
            last_save = now
        if evaluation_due:
            started = time.perf_counter()
            evaluator.run(step, manager.latest_checkpoint)
            window_start += time.perf_counter() - started  # images/s counts training time only
    return logs


def _distributed_train_function(model, jit_compile):
    """One step of Keras's own `model.train_step` on every replica, with the
    logs averaged over replicas. (Keras's `make_train_function` reduces scalar
    logs with `axis=0`, which fails under MultiWorkerMirroredStrategy.)"""
    strategy = model.distribute_strategy
    step = tf.function(model.train_step, jit_compile=True, reduce_retracing=True) if jit_compile else model.train_step

    @tf.function(reduce_retracing=True)
    def train_function(iterator):
        logs = strategy.run(step, args=(next(iterator),))
        return tf.nest.map_structure(lambda value: strategy.reduce("MEAN", value, axis=None), logs)

    return train_function


def _check_batches_split(settings, replicas):
    """UserError when a global batch does not split evenly over the replicas."""
    batches = [("--batch_size", settings.schedule.batch_size)]
    if settings.evaluation.enabled and settings.evaluation.eval_batch_size:
        batches.append(("--eval_batch_size", settings.evaluation.eval_batch_size))
    for flag, size in batches:
        if size % replicas:
            raise UserError(f"{flag} {size} does not split evenly over the {replicas} replicas; give a multiple "
                            f"of {replicas}")


def _check_evaluation(settings, shard_dir, num_classes):
    """UserError when the split to evaluate during training has no records, or labels outside the classes,
    or when --eval_views asks for views the run's pipeline does not have."""
    _evaluation_preprocessing(settings)
    records, histogram = split_labels(shard_dir, settings.evaluation.eval_split)
    if not records:
        raise ParameterError(f"{shard_dir} holds no {settings.evaluation.eval_split} records to evaluate during "
                             f"training; give `eval_split` train, or convert the dataset with a validation split")
    if min(histogram) < 0 or max(histogram) >= num_classes:
        raise UserError(f"the {settings.evaluation.eval_split} records of {shard_dir} have labels {min(histogram)}.."
                        f"{max(histogram)}, outside the network's classes 0..{num_classes - 1}")


def _evaluation_preprocessing(settings):
    """The run's pipeline's test transform, or its ten views with --eval_views 10 (as fgtf.evaluate's)."""
    pipeline = get_pipeline(settings.data.preprocessing)
    return pipeline.ten_views() if settings.evaluation.eval_views == 10 else pipeline


def _evaluator(model, optimizer, settings, shard_dir, config, class_names, writer, chief, num_examples, total_steps):
    """The `fgtf.train_eval.TrainingEvaluator` of --eval_every_epochs / --eval_every_steps, made under the
    run's strategy (the split and views checked by `_check_evaluation`)."""
    schedule = EvaluationSchedule(total_steps, num_examples, settings.schedule.batch_size,
                                  every_steps=settings.evaluation.eval_every_steps,
                                  every_epochs=settings.evaluation.eval_every_epochs)
    with model.distribute_strategy.scope():
        return TrainingEvaluator(model, optimizer, model.distribute_strategy, schedule, shard_dir=shard_dir,
                                 split=settings.evaluation.eval_split, image_size=config.image_size,
                                 batch_size=settings.evaluation.eval_batch_size or settings.schedule.batch_size,
                                 num_classes=config.num_classes,
                                 run_dir=settings.run.run_dir, chief=chief, config=config, class_names=class_names,
                                 writer=writer, preprocessing=_evaluation_preprocessing(settings),
                                 views=settings.evaluation.eval_views, skip_bad_records=settings.data.skip_bad_records)


def _print_evaluations(evaluator, chief):
    line = evaluator.summary_line() if evaluator is not None and chief else None
    if line:
        print(line)


def _check_settings(settings):
    if (settings.schedule.max_number_of_steps is None) == (settings.schedule.epochs is None):
        raise ParameterError("give exactly one of `max_number_of_steps` and `epochs`")
    if settings.evaluation.eval_every_epochs is not None and settings.evaluation.eval_every_steps is not None:
        raise ParameterError("give at most one of `eval_every_epochs` and `eval_every_steps`")
    if settings.run.strategy == "tpu" and settings.evaluation.enabled:
        raise ParameterError("evaluation during training needs whole-split batches of any size, which `strategy` tpu "
                             "does not run; evaluate the run's checkpoints as they appear with python -m fgtf.evaluate "
                             "--checkpoint RUN_DIR --eval_interval_secs 60")
    if settings.run.strategy == "tpu" and not settings.run.tpu:
        raise ParameterError("`strategy` tpu needs `tpu`, the TPU's name or address (e.g. grpc://10.0.0.2:8470)")
    if not os.path.isdir(settings.data.dataset_dir):
        raise ParameterError(f"`dataset_dir` {settings.data.dataset_dir} does not exist; convert the dataset first "
                             f"(python -m fgtf.convert --dataset_dir <its folder of images> --num_shards N)")

    if settings.model.model is not None and settings.model.model not in list_models():
        raise UserError(f"unknown model {settings.model.model!r}; known models: {', '.join(list_models())}")
    if settings.optimization.nesterov and settings.optimization.optimizer != "momentum":
        raise ParameterError(f"`nesterov` is an option of `optimizer` momentum, not of "
                             f"{settings.optimization.optimizer}")
    multistep = settings.schedule.learning_rate_decay_type == "multistep"
    if multistep != bool(settings.schedule.milestone_epochs or settings.schedule.milestone_steps):
        raise ParameterError("`learning_rate_decay_type` multistep needs `milestone_epochs` or `milestone_steps`"
                             if multistep else "`milestone_epochs` and `milestone_steps` are for "
                                               "`learning_rate_decay_type` multistep")


def _settings_from_runs(settings):
    """Fill in --model, --image_size and --preprocessing when they were left
    out: from the run being resumed (--run_dir), else from the --checkpoint
    run (or the network an fgtf .weights.h5 or a torch state dict holds),
    else inception_v3, then the network's default size and pipeline.
    Returns the settings so completed and the names of those taken from the
    --checkpoint run (for the line saying what it loaded)."""
    given = {"model": settings.model.model, "image size": settings.data.image_size,
             "preprocessing": settings.data.preprocessing}
    source, from_start = RecordedNetwork(), False
    if runs.has_checkpoint(settings.run.run_dir):
        source = recorded_network(settings.run.run_dir)
    elif settings.fine_tuning.checkpoint:
        kind = checkpoint_kind(settings.fine_tuning.checkpoint)
        if kind == "saved_model":
            raise UserError(saved_model_refusal(settings.fine_tuning.checkpoint, START_WEIGHTS))
        source, from_start = recorded_network(settings.fine_tuning.checkpoint), kind == "run"
    model = settings.model.model or source.model or DEFAULT_MODEL
    completed = settings.replace(
        model__model=model,
        data__image_size=settings.data.image_size or source.image_size or default_image_size(model),
        data__preprocessing=settings.data.preprocessing or source.preprocessing or default_preprocessing(model))
    if completed.data.min_crop_area is not None and completed.data.preprocessing != "inception":
        raise ParameterError(f"`min_crop_area` sets the random crop of the inception preprocessing; `preprocessing` "
                             f"{completed.data.preprocessing} crops as its seed does")
    return completed, [name for name, value in given.items() if value is None] if from_start else []


def _dataset_facts(settings, shard_dir):
    """(training examples, classes) of the shards (from their manifest, or read
    when there is none) and the registry; the labels must fit the classes."""
    records, histogram = split_labels(shard_dir, "train")
    if not records:
        raise UserError(f"{shard_dir} holds no train records")
    if min(histogram) < 0:
        raise UserError(f"the train records of {shard_dir} have the label {min(histogram)}; labels number the "
                        f"classes from 0")
    num_classes = settings.data.num_classes or get_dataset_info(settings.data.dataset).num_classes
    if num_classes is None and max(histogram) >= records:
        raise ParameterError(f"the train records of {shard_dir} have labels up to {max(histogram)} but are only "
                             f"{records}: labels must number the classes 0..K-1; give `num_classes` if there really "
                             f"are {max(histogram) + 1} classes")
    num_classes = num_classes or max(histogram) + 1
    if max(histogram) >= num_classes:
        raise ParameterError(f"the train records have labels up to {max(histogram)}, more than `num_classes` "
                             f"{num_classes} allows (labels 0..{num_classes - 1}); give `num_classes` "
                             f"{max(histogram) + 1} or the matching `dataset`")
    num_examples = records
    if settings.data.label_ratio:
        num_examples = max(int(num_examples * settings.data.label_ratio / 100), num_classes)
    if settings.schedule.batch_size > num_examples:
        raise ParameterError(f"`batch_size` {settings.schedule.batch_size} is larger than the {num_examples} training "
                             f"images")
    return num_examples, num_classes


def _check_same_run(run_dir, config):
    """Refuse to continue a run folder with other settings (nothing is changed)."""
    if not runs.has_checkpoint(run_dir):
        return
    stored = runs.load_run_config(run_dir)
    differing = [f"{key} {getattr(stored, key)} -> {getattr(config, key)}" for key in RUN_SETTINGS
                 if getattr(stored, key) is not None and getattr(stored, key) != getattr(config, key)]
    if differing:
        raise ParameterError(f"{run_dir} is a run with other settings ({'; '.join(differing)}); give a new `run_dir` "
                             f"and start from this one with `checkpoint` {run_dir}")


def _check_drop_path(settings):
    builder = get_builder(settings.model.model)
    if settings.model.drop_path_rate and "drop_path_rate" not in inspect.signature(builder).parameters:
        raise ParameterError(f"`drop_path_rate` is for backbones with stochastic depth (Swin); {settings.model.model} "
                             f"has none")


def _run_config(settings, num_classes, num_examples, total_steps):
    aux_logits = (has_aux_logits(settings.model.model, settings.data.image_size)
                  and settings.optimization.aux_loss_weight > 0)
    return RunConfig(model_name=settings.model.model, num_classes=num_classes, image_size=settings.data.image_size,
                     head=settings.head.head,
                     head_options=head_options(settings.head.head, settings.head.options, settings.data.dataset),
                     aux_logits=aux_logits and settings.head.head == NO_HEAD,
                     drop_path_rate=settings.model.drop_path_rate or None,
                     dataset_name=settings.data.dataset,
                     num_train_examples=num_examples, total_steps=total_steps, batch_size=settings.schedule.batch_size,
                     label_smoothing=settings.optimization.label_smoothing, optimizer=settings.optimization.optimizer,
                     preprocessing=settings.data.preprocessing, training=settings.to_dict())


def prepare_optimization(model, settings, num_examples, total_steps):
    """Apply a run's optimisation settings (a `TrainConfig`) to `model`:
    freeze what lies outside --trainable_scopes, add slim's weight decay, set
    the batch-norm decay; return the run's optimizer (built by
    `fgtf.optimization.make_optimizer`, not yet built on variables) for
    `num_examples` training images per epoch and a run of `total_steps`.
    Raises UserError for scopes that name nothing."""
    _prepare_trainable(model, settings)
    return _optimizer(settings, model, num_examples, total_steps)


def _optimizer(settings, model, num_examples, total_steps):
    course, optimization = settings.schedule, settings.optimization

    def steps(epochs):
        return decay_steps_for(num_examples, course.batch_size, epochs)

    schedule = learning_rate_schedule(
        course.learning_rate, course.learning_rate_decay_type,
        decay_steps=course.num_steps_per_decay or steps(course.num_epochs_per_decay),
        decay_factor=course.learning_rate_decay_factor, end_learning_rate=course.end_learning_rate,
        milestones=course.milestone_steps or tuple(steps(e) for e in course.milestone_epochs),
        warmup_steps=course.warmup_steps or int(course.warmup_epochs * steps_per_epoch(num_examples,
                                                                                       course.batch_size)),
        total_steps=total_steps)
    multipliers = {}
    trained = {id(v) for v in model.trainable_variables}
    for scope, factor in optimization.learning_rate_multipliers:
        named = [v for v in variables_in_scopes(model, scope, settings.fine_tuning.scope_matching) if id(v) in trained]
        if not named:
            raise ParameterError(f"`learning_rate_multipliers` {scope}={factor:g}: {scope} names no trained weight of "
                                 f"{model.name}")
        for variable in named:
            if multipliers.setdefault(variable.path, factor) != factor:
                raise ParameterError(f"`learning_rate_multipliers` gives {variable.path} two factors "
                                     f"({multipliers[variable.path]:g} and {factor:g})")
    mode, rate = _weight_decay(settings)
    return make_optimizer(optimization.optimizer, schedule, momentum=optimization.momentum,
                          nesterov=optimization.nesterov, rmsprop_decay=optimization.rmsprop_decay,
                          rmsprop_momentum=optimization.rmsprop_momentum,
                          rmsprop_initial_mean_square=optimization.rmsprop_initial_mean_square,
                          epsilon=optimization.opt_epsilon, adam_beta1=optimization.adam_beta1,
                          adam_beta2=optimization.adam_beta2, weight_decay=rate, weight_decay_mode=mode,
                          learning_rate_multipliers=multipliers, clip_gradient_norm=optimization.clip_gradient_norm,
                          moving_average_decay=optimization.moving_average_decay)


def _weight_decay(settings):
    """(mode, rate) of the run's weight decay: --weight_decay_mode, else the
    optimizer's (decoupled for adamw, slim's otherwise); --weight_decay, else
    the mode's."""
    optimization = settings.optimization
    mode = optimization.weight_decay_mode or default_weight_decay_mode(optimization.optimizer)
    return mode, DEFAULT_WEIGHT_DECAY[mode] if optimization.weight_decay is None else optimization.weight_decay


def _prepare_trainable(model, settings):
    fine_tuning = settings.fine_tuning
    freeze_outside_scopes(model, fine_tuning.trainable_scopes, fine_tuning.scope_matching,
                          fine_tuning.frozen_batch_norm)
    mode, rate = _weight_decay(settings)
    if mode == "slim":
        apply_weight_decay(model, rate)
    if settings.model.batch_norm_decay is not None:
        for layer in flatten_layers(model):
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = settings.model.batch_norm_decay


def _compile(model, optimizer, config, settings):
    loss = SparseCrossentropy(label_smoothing=config.label_smoothing)
    top5 = Float32TopK(k=min(5, config.num_classes), name="top5")
    head = _head(config.head)
    if head and head.loss_built_in:  # e.g. CLE's: label-smoothed CE on both views + contrastive
        model.compile(optimizer, metrics=["accuracy", top5], jit_compile=settings.run.jit_compile)
    elif config.aux_logits:
        model.compile(optimizer, loss=[loss, loss], loss_weights=[1.0, settings.optimization.aux_loss_weight],
                      metrics=[["accuracy", top5], []], jit_compile=settings.run.jit_compile)
    else:
        model.compile(optimizer, loss=loss, metrics=["accuracy", top5], jit_compile=settings.run.jit_compile)


def _batch_spec(config):
    size = config.image_size
    images = tf.TensorSpec((None, size, size, 3), tf.float32)
    head = _head(config.head)
    if head and head.views > 1:
        images = (images,) * head.views
    labels = tf.TensorSpec((None,), tf.int32)
    return images, (labels, labels) if config.aux_logits else labels


def _labels_per_output(dataset, config):
    """The batches with one label tensor per output the loss compiles
    (Keras gives each output its own): the labels twice with aux logits."""
    if not config.aux_logits:
        return dataset
    return dataset.map(lambda images, labels: (images, (labels, labels)))


def _train_dataset(settings, shard_dir, input_context, start_step):
    preprocessing = get_pipeline(settings.data.preprocessing)
    if settings.data.min_crop_area is not None:  # inception's, with its crop's smallest area changed
        preprocessing = functools.partial(preprocess_image, min_crop_area=settings.data.min_crop_area)
    head = _head(settings.head.head)
    if head and head.training_preprocessing:  # e.g. CLE's two views: a base augmentation and its altered twin
        preprocessing = imported(head.training_preprocessing)(preprocessing)
    pipeline = PipelineSettings(image_size=settings.data.image_size, batch_size=settings.schedule.batch_size,
                                training=True, preprocessing=preprocessing, seed=settings.run.seed,
                                label_ratio=settings.data.label_ratio, start_step=start_step)
    reading = ReadSettings(deterministic=True, skip_bad_records=settings.data.skip_bad_records)
    return make_dataset(shard_dir, "train", pipeline, reading, input_context=input_context)


def _head(name):
    """The `fgtf.models.heads.Head` of a run's --head, None without one."""
    return None if name == NO_HEAD else head_record(name)


def _initialise(model, settings, from_run):
    """Start from --checkpoint: the model weights of a previous fgtf run (not
    its optimizer or step), or backbone weights (see
    `fgtf.checkpoints.load_into`); prints what was loaded."""
    fine_tuning = settings.fine_tuning
    excluded_text = fine_tuning.checkpoint_exclude_scopes
    excluded = scope_list(excluded_text)
    if excluded and fine_tuning.scope_matching == "substring":
        # the loaders match scopes by prefix: add the scopes of every layer a substring names
        excluded += layer_scopes(model, variables_in_scopes(model, excluded, "substring"))
    loaded = load_into(model, fine_tuning.checkpoint, model_name=settings.model.model, exclude_scopes=excluded,
                       use_ema=not fine_tuning.no_ema, saved_model_use=START_WEIGHTS)
    print(f"initialised from {fine_tuning.checkpoint}: {describe(loaded, from_run)}"
          + (f"; excluding {excluded_text}" if excluded_text else ""))


def _checkpoint_dir(train_dir, chief, strategy):
    """Non-chief workers of a multi-worker run save into a scratch folder (all
    workers must take part in saving; only the chief's copy is kept)."""
    if chief:
        return train_dir
    return os.path.join(train_dir, f".worker_{strategy.cluster_resolver.task_id}")


def _clean_worker_dir(train_dir, chief, strategy):
    if not chief:
        shutil.rmtree(_checkpoint_dir(train_dir, chief, strategy), ignore_errors=True)
