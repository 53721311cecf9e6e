"""Evaluation during training: `fgtf.train --eval_every_epochs N` (or
`--eval_every_steps N`) evaluates the weights being trained (their moving
average when the run keeps one, as `fgtf.evaluate` does) every N epochs or
steps and at the last step, each time just after a checkpoint of those
weights was saved, and writes beside the run:

    <run_dir>/eval_history.csv   one row per evaluation: step, epoch, top-1, top-5, mean per-class accuracy,
                                 loss, images (a resumed run replaces a step's row, never repeats it)
    <run_dir>/eval_summary.json  the best and the last evaluation, and which of the two each paper reports
    <run_dir>/best/              the checkpoint of the best top-1 so far: a run folder of its own that every
                                 command taking --checkpoint loads (the run's checkpoint manager never sees it)
    <run_dir>/train/             TensorBoard: eval/top1, eval/top5, eval/mean_per_class_accuracy, eval/loss

The metrics are `fgtf.metrics.classification_metrics`, so a row equals what
`python -m fgtf.evaluate --checkpoint <that checkpoint>` reports. The split's
dataset and the compiled prediction step are built once; each evaluation is
one pass of batched predictions on every replica, gathered to the host.
"""
from __future__ import annotations
import csv
import io
import math
import os
import time
from fractions import Fraction

import numpy as np

from fgtf.errors import UserError

HISTORY = "eval_history.csv"
SUMMARY = "eval_summary.json"
BEST = "best"
COLUMNS = ("step", "epoch", "top1", "top5", "mean_per_class_accuracy", "loss", "num_images")
METRICS = ("top1", "top5", "mean_per_class_accuracy", "loss")
# Which evaluation each paper's headline number is (read from their code and text).
REPORTED_BY_PAPERS = {
    "best": "SEF and CLE-ViT report the best test top-1 over epochs; SAM the best of its evaluations, "
            "with ten test views (--eval_views 10)",
    "last": "the CVPR 2018 study (Cui et al.) reports the last checkpoint's",
}
PAPERS_IN_SHORT = "SEF and CLE-ViT report the best, SAM the best with ten test views, the CVPR 2018 study the last"


class EvaluationSchedule:
    """When a run of `total_steps` evaluates: every `every_steps` steps, or
    every `every_epochs` epochs of `num_examples` images in global batches
    of `batch_size` (at the first step that completes them), and always at
    the last step."""

    def __init__(self, total_steps, num_examples, batch_size, *, every_steps=None, every_epochs=None):
        if (every_steps is None) == (every_epochs is None):
            raise ValueError("give exactly one of every_steps and every_epochs")
        self.total_steps = total_steps
        self.every_steps = every_steps
        # Exact arithmetic: epoch k ends at step ceil(k * period), never one off by rounding.
        self.steps_per_epoch = Fraction(num_examples, batch_size)
        self.period = None if every_epochs is None else Fraction(str(every_epochs)) * self.steps_per_epoch

    def is_due(self, step):
        if step == self.total_steps:
            return True
        if self.every_steps is not None:
            return step > 0 and step % self.every_steps == 0
        evaluations = math.floor(step / self.period)  # the evaluations due by `step`
        return evaluations >= 1 and evaluations * self.period > step - 1

    def epoch(self, step):
        return float(step / self.steps_per_epoch)


class TrainingEvaluator:
    """Evaluates `model` (trained by `optimizer` under `strategy`) on the
    `split` of the shards in `shard_dir`, by `schedule`, and records each
    evaluation in the run folder `run_dir` when `chief` (every worker of a
    multi-worker run predicts its share; only the chief writes). `config` and
    `class_names`: the run's, copied into `best/`; `writer`: a function
    giving the run's TensorBoard writer; `preprocessing`: as
    `fgtf.input_pipeline.PipelineSettings` takes it, giving `views` test
    views per image (1, or SAM's 10)."""

    def __init__(self, model, optimizer, strategy, schedule, *, shard_dir, split, image_size, batch_size,
                 num_classes, run_dir, chief, config, class_names=None, writer=None, preprocessing="inception",
                 views=1, skip_bad_records=False):
        self.model, self.strategy, self.schedule = model, strategy, schedule
        self.split, self.num_classes, self.run_dir, self.chief = split, num_classes, run_dir, chief
        self.views = views
        self.config, self.class_names, self.writer = config, class_names, writer
        self.averages = optimizer.moving_averages()
        self.dataset = strategy.distribute_datasets_from_function(
            lambda context: _split_dataset(shard_dir, split, image_size, batch_size, context, preprocessing,
                                           skip_bad_records))
        self.predict = _distributed_predict_function(model)

    def pending(self, step):
        """True when `step` (that of the checkpoint just restored) is due
        but has no row yet: the process was stopped between its checkpoint
        and its row. The chief's history decides for every worker (theirs
        may not see it, and all of them must take part in an evaluation)."""
        if not self.schedule.is_due(step):
            return False
        import tensorflow as tf

        missing = tf.constant(int(self.chief and step not in read_history(self.run_dir)))
        votes = self.strategy.run(lambda: tf.identity(missing))
        return bool(self.strategy.reduce("SUM", votes, axis=None) > 0)

    def run(self, step, checkpoint_prefix):
        """Evaluate the current weights, the checkpoint `checkpoint_prefix`
        of `step`; on the chief, record the row, the best checkpoint, the
        summary and TensorBoard scalars and print them. Returns the metrics."""
        started = time.perf_counter()
        metrics = self.evaluate()
        row = {"step": step, "epoch": self.schedule.epoch(step), "num_images": metrics["num_images"],
               **{name: metrics[name] for name in METRICS}}
        if self.chief:
            best = self._record(row, checkpoint_prefix)
            print(f"evaluation at step {step} (epoch {row['epoch']:.2f}) on {self._what()}: top-1 {row['top1']:.4f}  "
                  f"top-5 {row['top5']:.4f}  mean per-class {row['mean_per_class_accuracy']:.4f}  "
                  f"loss {row['loss']:.4f}  ({row['num_images']} images"
                  f"{', EMA weights' if self.averages else ''}, {time.perf_counter() - started:.1f} s)"
                  + ("  new best" if best else ""), flush=True)
        return metrics

    def evaluate(self):
        """`fgtf.metrics.classification_metrics` of the current weights (the
        moving averages when the optimizer keeps them) on the split, with
        `num_images`."""
        from fgtf.metrics import classification_metrics

        self._swap_averages()
        try:
            logits, labels = [], []
            for batch in self.dataset:
                batch_logits, batch_labels = self.predict(batch)
                logits.append(batch_logits.numpy())
                labels.append(batch_labels.numpy())
        finally:
            self._swap_averages()
        labels = np.concatenate(labels).astype(np.int64)
        metrics = classification_metrics(np.concatenate(logits), labels, self.num_classes)
        return {**metrics, "num_images": int(len(labels))}

    def summary_line(self):
        """The best and last evaluation and which one the papers report, or None before any."""
        summary = eval_summary(self.run_dir)
        if summary is None:
            return None
        best, last = summary["best"], summary["last"]
        return (f"evaluated {summary['evaluations']} times on {self._what()}: best top-1 {best['top1']:.4f} at step "
                f"{best['step']} (epoch {best['epoch']:.2f}, {os.path.join(self.run_dir, BEST)}), last "
                f"{last['top1']:.4f} at step {last['step']} (epoch {last['epoch']:.2f}); {PAPERS_IN_SHORT}")

    def _what(self):
        return self.split + (f", {self.views} views summed" if self.views > 1 else "")

    def _swap_averages(self):
        """Exchange the trained weights and their moving averages (twice: back as they were)."""
        import tensorflow as tf

        for variable, average in self.averages:
            value = tf.identity(variable)  # an assignment to the variable leaves this read as it was
            variable.assign(average)
            average.assign(value)

    def _record(self, row, checkpoint_prefix):
        """Record the row (see `record_evaluation`) and its TensorBoard scalars (with a writer). True for a new
        best."""
        import tensorflow as tf

        new_best = record_evaluation(self.run_dir, row, checkpoint_prefix, self.config, self.class_names,
                                     split=self.split, views=self.views)
        if self.writer is not None:
            with self.writer().as_default(step=row["step"]):
                for name in METRICS:
                    tf.summary.scalar(f"eval/{name}", row[name])
            self.writer().flush()
        return new_best


def record_evaluation(run_dir, row, checkpoint_prefix, config, class_names=None, split=None, views=1):
    """Add the evaluation `row` (a dict of `COLUMNS`) of the checkpoint
    `checkpoint_prefix` to the run folder `run_dir`: the history (replacing a
    row of the same step), the best checkpoint when it beats the one in
    `best/` (ties keep the earlier), and the summary (of the `split` with
    `views` test views). Returns True for a new best."""
    from fgtf.fileio import write_json

    history = read_history(run_dir)
    best_step = best_checkpoint_step(run_dir)
    new_best = (best_step is None or best_step == row["step"] or best_step not in history
                or row["top1"] > history[best_step]["top1"])
    if new_best:  # before the row: a run stopped in between evaluates this step again (`pending`)
        keep_best(run_dir, checkpoint_prefix, config, class_names)
    history[row["step"]] = row
    write_history(run_dir, history)
    write_json(os.path.join(run_dir, SUMMARY), eval_summary(run_dir, split=split, views=views))
    return new_best


def read_history(run_dir: str) -> dict[int, dict]:
    """{step: row} of the run's eval_history.csv (empty when there is none)."""
    path = os.path.join(run_dir, HISTORY)
    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise UserError(f"{path} is not an evaluation history of fgtf.train (its columns are "
                            f"{reader.fieldnames}); move it away to start a new one")
        try:
            rows = [{name: (int if name in ("step", "num_images") else float)(line[name]) for name in COLUMNS}
                    for line in reader]
        except (TypeError, ValueError):
            raise UserError(f"{path} has a row that is not numbers; it was altered or damaged (move it away "
                            f"to start a new one)") from None
    return {row["step"]: row for row in rows}


def write_history(run_dir, history):
    """Write {step: row} as the run's eval_history.csv, by step, in one atomic replace."""
    from fgtf.fileio import write_text

    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(COLUMNS)
    for step in sorted(history):
        row = history[step]
        writer.writerow([row["step"], f"{row['epoch']:.4f}", *(f"{row[name]:.6f}" for name in METRICS),
                         row["num_images"]])
    write_text(os.path.join(run_dir, HISTORY), text.getvalue())


def eval_summary(run_dir: str, split: str | None = None, views: int = 1) -> dict | None:
    """{'best', 'last', 'evaluations', 'reported_by_papers', ...} of the run's
    history and best checkpoint (on the `split`, with `views` test views), or
    None before its first evaluation."""
    history = read_history(run_dir)
    best_step = best_checkpoint_step(run_dir)
    if not history or best_step not in history:
        return None
    last = history[max(history)]
    return {"split": split, "eval_views": views, "evaluations": len(history),
            "best": {**history[best_step], "checkpoint": os.path.join(BEST, f"ckpt-{best_step}")},
            "last": {**last, "checkpoint": f"ckpt-{last['step']}"},
            "reported_by_papers": REPORTED_BY_PAPERS}


def best_checkpoint_step(run_dir):
    """The step of the checkpoint in `<run_dir>/best`, or None when there is none."""
    from fgtf import runs

    folder = os.path.join(run_dir, BEST)
    prefix = runs.latest_checkpoint(folder) if os.path.isdir(folder) else None
    return None if prefix is None else int(os.path.basename(prefix).rsplit("-", 1)[1])


def keep_best(run_dir, checkpoint_prefix, config, class_names=None):
    """Make the checkpoint `checkpoint_prefix` of the run folder `run_dir`
    the one in `<run_dir>/best`, with the run's config and class names (so
    that the folder loads as a run). Its files are hard links where the file
    system allows (no copy, and the checkpoint manager's deleting its own
    name leaves them); the switch is the atomic rewrite of the folder's
    checkpoint state file, after which the former best's files are removed."""
    import shutil

    from fgtf import runs
    from fgtf.fileio import write_text

    folder = os.path.join(run_dir, BEST)
    os.makedirs(folder, exist_ok=True)
    runs.save_run_config(folder, config)
    if class_names is not None:
        runs.save_class_names(folder, class_names)
    source_dir, name = os.path.split(checkpoint_prefix)
    for file_name in os.listdir(source_dir):
        if file_name.startswith(name + "."):
            target = os.path.join(folder, file_name)
            if os.path.exists(target):
                os.remove(target)
            try:
                os.link(os.path.join(source_dir, file_name), target)
            except OSError:  # a file system without hard links
                shutil.copy2(os.path.join(source_dir, file_name), target)
    # TensorFlow's checkpoint state (a text proto), replaced in one step: from here on `best` is this one.
    write_text(os.path.join(folder, "checkpoint"),
               f'model_checkpoint_path: "{name}"\nall_model_checkpoint_paths: "{name}"\n')
    for file_name in os.listdir(folder):
        if file_name.startswith("ckpt-") and not file_name.startswith(name + "."):
            os.remove(os.path.join(folder, file_name))


def _split_dataset(shard_dir, split, image_size, batch_size, input_context, preprocessing, skip_bad_records):
    from fgtf.input_pipeline import PipelineSettings, ReadSettings, make_dataset

    return make_dataset(shard_dir, split, PipelineSettings(image_size=image_size, batch_size=batch_size, training=False,
                                                           preprocessing=preprocessing),
                        ReadSettings(skip_bad_records=skip_bad_records), input_context=input_context)


def _distributed_predict_function(model):
    """One compiled step: the logits (float32) and labels of a distributed
    batch, gathered from every replica. Images with several views (B, V, S,
    S, 3) get the sum of their views' logits, each view of the batch in a
    forward pass of its own, as `fgtf.evaluate` runs them (a head that
    normalises over its batch, SAM-Bilinear's mask, sees the same batches)."""
    import tensorflow as tf

    strategy = model.distribute_strategy

    def logits_of(images):
        outputs = model(images, training=False)
        return tf.cast(outputs[0] if isinstance(outputs, (list, tuple)) else outputs, tf.float32)

    def predict_step(images, labels):
        if images.shape.rank == 5:
            return sum(logits_of(images[:, view]) for view in range(images.shape[1])), labels
        return logits_of(images), labels

    @tf.function(reduce_retracing=True)
    def predict(batch):
        logits, labels = strategy.run(predict_step, args=batch)
        return strategy.gather(logits, axis=0), strategy.gather(labels, axis=0)

    return predict
