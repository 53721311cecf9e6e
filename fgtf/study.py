"""The paper's transfer study in miniature (Cui et al., CVPR 2018, Sec. 4-5,
Fig. 5) on datasets fgtf reads: pretrain a backbone on a source, then for each
target measure

- `probe_top1`: a logistic-regression probe on the pretrained features,
- `finetune_top1`: fine-tuning from the pretrained run, the classifier alone,
  then the whole network at a lower learning rate,
- `scratch_top1`: the same network trained from scratch for as many steps as
  both fine-tuning stages together,
- `emd` and `similarity`: the EMD domain similarity of source and target,
  computed on the pretrained features (`fgtf.transfer.domain_similarity`),

all top-1 on the target's validation split; and `transferability`, every
score of `fgtf.transfer.transferability` for a source and a target, which
predict those top-1s before any training on the target.

    recipe = Recipe()
    source_run = pretrain_source(convert("data/world/source", recipe), "runs/study/source", recipe)
    transfer(source_run, "data/world/targets/birds", "runs/study/birds", recipe)
    # {'classes': 20, 'probe_top1': ..., 'knn_top1': ..., 'finetune_top1': ...}
    from_scratch("data/world/targets/birds", "runs/study/birds/scratch", recipe)
    domain_similarity(source_run, "data/world/source", "data/world/targets/birds",
                      "runs/study/features", recipe, target_name="birds")  # {'emd': ..., 'similarity': ...}

Every step writes into its own folder and skips what an earlier call
finished (training runs resume, features and evaluations are kept), so an
interrupted study continues where it stopped. `fgtf.demo` runs it on the
synthetic world; benchmarks/transfer_study.py over many sources.
"""
import dataclasses
import json
import os
import shutil

from fgtf.fileio import write_json
from fgtf.errors import UserError

# The classifier scope of the slim-style networks the study trains (SmallCNN,
# Inception); fine-tuning re-initialises and first trains only it.
CLASSIFIER_SCOPE = "Logits"
# The dataset registry entry of seed-style folders without a fixed class count.
DATASET = "synthetic"
# Each training run's settings (the study's own choices, not fgtf.train's whole config), kept in its folder.
STUDY_SETTINGS = "study_settings.json"
# The description of the world a study folder's runs were made from.
STUDY_WORLD = "world.json"


@dataclasses.dataclass(frozen=True)
class Recipe:
    """Every training setting of the study. Steps count global batches.

    Pretraining runs `pretrain_epochs` over the source at `learning_rate`;
    fine-tuning trains the classifier for `finetune_last_steps` at
    `classifier_learning_rate`, then the whole network for
    `finetune_all_steps` at `finetune_learning_rate`; from scratch trains for the sum of both at
    `learning_rate`. `min_images` and `gamma` are the EMD's (classes with
    fewer images are left out; similarity = exp(-gamma * EMD)).

    The fine-tuning split (a short classifier stage, then most steps on the
    whole network at 3e-4) was chosen on world seed 1's demo, where 150
    classifier steps and 60 whole-network steps at 1e-4 only matched the
    linear probe; world seed 0 is the held-out check (docs/world.md). Its
    classifier stage runs the frozen network's batch norm on moving
    statistics (`frozen_batch_norm` inference, Keras's frozen layer), as the
    demo's figures were measured; slim ran it in training mode, fgtf.train's
    default."""
    model: str = "small_cnn"
    image_size: int = 64
    batch_size: int = 64
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    classifier_learning_rate: float = 1e-2
    finetune_learning_rate: float = 3e-4
    pretrain_epochs: float = 7.0
    finetune_last_steps: int = 60
    finetune_all_steps: int = 150
    batch_norm_decay: float = 0.9
    min_crop_area: float = 0.5
    weight_decay: float = 4e-5
    frozen_batch_norm: str = "inference"
    num_shards: int = 2
    min_images: int = 5
    gamma: float = 0.01

    def as_dict(self):
        return dataclasses.asdict(self)


def start(folder, world):
    """Make `folder` the study folder of `world` (the description
    `generate_world` returns): a folder whose runs were made from another
    world (other options, or images drawn by an older fgtf: its world's
    `format_version` differs) is emptied first, since its runs, features and
    results would otherwise be taken as finished for this one."""
    world = json.loads(json.dumps(world))
    record = os.path.join(folder, STUDY_WORLD)
    if os.path.isdir(folder) and _read_json(record) != world:
        print(f"{folder} holds runs of another world; starting it afresh")
        shutil.rmtree(folder)
    if not os.path.isfile(record):
        try:
            write_json(record, world)
        except OSError as error:
            raise UserError(f"cannot write the study folder {folder}: {error.strerror or error}") from None


def convert(dataset_dir, recipe, **subset):
    """Shards of the seed-style folder `dataset_dir` (its `tfrecords/`, or the
    subset folder `fgtf.convert` names for `subset`, e.g. class_list=...),
    converted unless already there. Returns the shard folder."""
    from fgtf.convert import ConvertOptions, convert as convert_dataset

    return convert_dataset(ConvertOptions(dataset=DATASET, num_shards=recipe.num_shards, dataset_dir=dataset_dir,
                                          progress=False, **subset)).output_dir


def pretrain_source(shard_dir, run_dir, recipe, seed=0, steps=None):
    """Train `recipe.model` from scratch on `shard_dir` into `run_dir`
    (resumes): `recipe.pretrain_epochs`, or `steps` global batches."""
    budget = {"schedule__max_number_of_steps": steps} if steps else {"schedule__epochs": recipe.pretrain_epochs}
    _train(shard_dir, run_dir, recipe, seed, recipe.learning_rate, **budget)
    return run_dir


def transfer(source_run, target_dir, out_dir, recipe, seed=0, finetune=True):
    """What pretraining `source_run` gives the target dataset folder
    `target_dir`: {'classes', 'probe_top1', 'knn_top1', 'finetune_top1'}
    (without the last when not `finetune`), kept in `<out_dir>/transfer.json`.
    The target's features go to `<out_dir>/features`, the fine-tuning runs
    under `out_dir`."""
    settings = {"source_run": os.path.abspath(source_run), "target_dir": os.path.abspath(target_dir),
                "recipe": recipe.as_dict(), "seed": seed, "finetune": finetune}
    return _kept(os.path.join(out_dir, "transfer.json"), settings, lambda: _transfer(
        source_run, target_dir, out_dir, recipe, seed, finetune))


def from_scratch(target_dir, run_dir, recipe, seed=0):
    """Validation top-1 of the network trained from scratch on `target_dir`
    for as many steps as both fine-tuning stages together."""
    shards = convert(target_dir, recipe)
    _train(shards, run_dir, recipe, seed, recipe.learning_rate,
           schedule__max_number_of_steps=recipe.finetune_last_steps + recipe.finetune_all_steps)
    return top1(run_dir, shards)


def domain_similarity(reference_run, source_dir, target_dir, features_dir, recipe, source_classes=None,
                      source_name="source", target_name="target"):
    """{'emd', 'similarity'} of the training images of two dataset folders in
    the features of `reference_run` (stored in `features_dir` under the two
    names). `source_classes`: keep only the source classes of these names (a
    subset of a pool, as `fgtf.convert --class_list` would make it)."""
    from fgtf.transfer import domain_similarity as ds

    xs, ys, xt, yt = _domain_images(reference_run, source_dir, target_dir, features_dir, recipe, source_classes,
                                    source_name, target_name)
    distance = ds.emd(*ds.class_features(xs, ys), *ds.class_features(xt, yt), min_images=recipe.min_images)
    return {"emd": distance, "similarity": float(ds.similarity(distance, recipe.gamma))}


def transferability(source_run, target_dir, out_dir, recipe, reference_run, source_dir, features_dir,
                    source_classes=None, target_name="target"):
    """Every score of `fgtf.transfer.transferability` for pretraining on
    `source_run` and transferring to the dataset folder `target_dir`, kept in
    `<out_dir>/transferability.json`: the scores of one network on the
    target's training images in `source_run`'s network (its features in
    `<out_dir>/features`, the classifier's softmax extracted beside them);
    OTDD and the EMD similarity between the source's training images
    (`source_dir`, `source_classes` as in `domain_similarity`) and the
    target's in the features of `reference_run` (in `features_dir`)."""
    settings = {"source_run": os.path.abspath(source_run), "target_dir": os.path.abspath(target_dir),
                "reference_run": os.path.abspath(reference_run), "source_dir": os.path.abspath(source_dir),
                "source_classes": source_classes, "recipe": recipe.as_dict()}
    return _kept(os.path.join(out_dir, "transferability.json"), settings, lambda: _transferability(
        source_run, target_dir, out_dir, recipe, reference_run, source_dir, features_dir, source_classes,
        target_name))


def finetune(source_run, shard_dir, folder, recipe, seed=0):
    """The two-stage recipe: `<folder>/finetune_last` trains a new classifier
    on the frozen pretrained network, `<folder>/finetune_all` the whole network
    from it. Returns the second run."""
    last, whole = os.path.join(folder, "finetune_last"), os.path.join(folder, "finetune_all")
    _train(shard_dir, last, recipe, seed, recipe.classifier_learning_rate, fine_tuning__checkpoint=source_run,
           fine_tuning__checkpoint_exclude_scopes=CLASSIFIER_SCOPE, fine_tuning__trainable_scopes=CLASSIFIER_SCOPE,
           schedule__max_number_of_steps=recipe.finetune_last_steps)
    _train(shard_dir, whole, recipe, seed, recipe.finetune_learning_rate, fine_tuning__checkpoint=last,
           schedule__max_number_of_steps=recipe.finetune_all_steps)
    return whole


def extract(run_dir, dataset_dir, name, features_dir, recipe, splits=("train", "validation"), outputs=("features",)):
    """Pooled features of the pretrained run on `dataset_dir` (skipped when
    stored); with "probabilities" in `outputs`, its classifier's softmax too."""
    from fgtf.extract_features import extract as extract_features

    return extract_features(DATASET, dataset_dir, run_dir, splits, out=features_dir, name=name,
                            image_size=recipe.image_size, outputs=outputs)


def linear_probe(features_dir, name):
    """{'top1', 'knn_top1', 'classes'} of a logistic-regression probe (and a
    5-NN cosine classifier) trained on `name`'s training features."""
    import numpy as np

    from fgtf.transfer import linear
    from fgtf.transfer.feature_store import load_features

    x_train, y_train = load_features(features_dir, name, "train")[:2]
    x_val, y_val = load_features(features_dir, name, "validation")[:2]
    probe = linear.fit_logistic_regression(x_train, y_train, standardize=True)
    knn = linear.knn_predict(x_train, y_train, x_val)
    return {"top1": linear.evaluate_probe(probe, x_val, y_val)["accuracy"],
            "knn_top1": float(np.mean(knn == y_val)), "classes": int(len(np.unique(y_train)))}


def top1(run_dir, shard_dir):
    """Validation top-1 of a run's latest checkpoint (`fgtf.evaluate`, its
    outputs in `<run_dir>/eval`)."""
    from fgtf import evaluate

    results_path = os.path.join(run_dir, "eval", "eval_results.json")
    results = _read_json(results_path)
    latest = os.path.abspath(_latest_checkpoint(run_dir))
    if not results or os.path.abspath(results.get("checkpoint", "")) != latest:
        results = evaluate.evaluate_checkpoint(run_dir, shard_dir)
    return results["top1"]


def class_indices(dataset_dir, names):
    """The labels of the classes `names` in the dataset folder `dataset_dir`."""
    from fgtf.datasets.splits import read_name_list

    index = {name: i for i, name in enumerate(read_name_list(os.path.join(dataset_dir, "classes.txt")))}
    unknown = [n for n in names if n not in index]
    if unknown:
        raise ValueError(f"{len(unknown)} class names are not in {dataset_dir}/classes.txt (first: {unknown[0]})")
    return [index[n] for n in names]


def _transfer(source_run, target_dir, out_dir, recipe, seed, with_finetune):
    features = os.path.join(out_dir, "features")
    extract(source_run, target_dir, "target", features, recipe)
    probe = linear_probe(features, "target")
    result = {"classes": probe["classes"], "probe_top1": probe["top1"], "knn_top1": probe["knn_top1"]}
    if with_finetune:
        shards = convert(target_dir, recipe)
        result["finetune_top1"] = top1(finetune(source_run, shards, out_dir, recipe, seed), shards)
    return result


def _transferability(source_run, target_dir, out_dir, recipe, reference_run, source_dir, features_dir,
                     source_classes, target_name):
    from fgtf.transfer.feature_store import load_features, load_probabilities
    from fgtf.transfer.transferability import METRICS

    own = os.path.join(out_dir, "features")
    extract(source_run, target_dir, "target", own, recipe, splits=("train",), outputs=("features", "probabilities"))
    features, labels, _ = load_features(own, "target", "train")
    inputs = {"features": (features, labels), "probabilities": (load_probabilities(own, "target", "train"), labels),
              "source_target": _domain_images(reference_run, source_dir, target_dir, features_dir, recipe,
                                              source_classes, "source", target_name)}
    options = {"emd_similarity": {"min_images": recipe.min_images, "gamma": recipe.gamma}}
    return {name: float(metric.function(*inputs[metric.inputs], **options.get(name, {})))
            for name, metric in METRICS.items()}


def _domain_images(reference_run, source_dir, target_dir, features_dir, recipe, source_classes, source_name,
                   target_name):
    """(source features, labels, target features, labels) of the training
    images of two dataset folders in the features of `reference_run`; the
    source only its classes `source_classes` (all when None), numbered in
    their order there."""
    import numpy as np

    from fgtf.transfer.feature_store import load_features

    extract(reference_run, source_dir, source_name, features_dir, recipe, splits=("train",))
    extract(reference_run, target_dir, target_name, features_dir, recipe, splits=("train",))
    xs, ys, _ = load_features(features_dir, source_name, "train")
    if source_classes is not None:
        kept = np.full(int(ys.max()) + 1, -1)
        kept[class_indices(source_dir, source_classes)] = np.arange(len(source_classes))
        rows = kept[ys] >= 0
        xs, ys = xs[rows], kept[ys[rows]]
    return (xs, ys, *load_features(features_dir, target_name, "train")[:2])


def _kept(path, settings, compute):
    """`compute()`'s result, kept in `path` with the settings that produced it."""
    done = _read_json(path)
    if done and done.get("settings") == settings:
        return done["result"]
    result = compute()
    write_json(path, {"settings": settings, "result": result})
    return result


def _train(shard_dir, run_dir, recipe, seed, learning_rate, **changes):
    """Train into `run_dir` with the study's settings (`_train_config`),
    resuming it only when it was started with these same settings: a run
    folder left by another recipe (or an older fgtf, which recorded other
    ones) is trained afresh, since resuming it would mix two trainings under
    the new recipe's name."""
    from fgtf.training import train

    settings = _train_config(shard_dir, run_dir, recipe, seed, learning_rate).replace(**changes)
    # The key: what the study chose (not fgtf.train's defaults), its paths absolute.
    chosen = settings.replace(data__dataset_dir=os.path.abspath(shard_dir), run__run_dir=os.path.abspath(run_dir),
                              fine_tuning__checkpoint=settings.fine_tuning.checkpoint
                              and os.path.abspath(settings.fine_tuning.checkpoint)).changed()
    record = os.path.join(run_dir, STUDY_SETTINGS)
    if os.path.isdir(run_dir) and (_read_json(record) or {}).get("settings") != chosen:
        print(f"{run_dir} was trained with other settings; training it afresh")
        shutil.rmtree(run_dir)
    if not os.path.isfile(record):
        write_json(record, {"settings": chosen})
    train(settings)


def _train_config(shard_dir, run_dir, recipe, seed, learning_rate):
    """The `fgtf.train_config.TrainConfig` of the study's runs at `learning_rate` (fixed), before the
    length and the start that each kind of run sets."""
    from fgtf.train_config import (DataSettings, FineTuningSettings, ModelSettings, OptimizationSettings,
                                   RunSettings, ScheduleSettings, TrainConfig)

    return TrainConfig(
        data=DataSettings(dataset_dir=shard_dir, dataset=DATASET, image_size=recipe.image_size,
                          min_crop_area=recipe.min_crop_area),
        run=RunSettings(run_dir=run_dir, seed=seed, log_every_n_steps=50, save_interval_secs=60,
                        max_checkpoints_to_keep=1),
        model=ModelSettings(model=recipe.model, batch_norm_decay=recipe.batch_norm_decay),
        fine_tuning=FineTuningSettings(frozen_batch_norm=recipe.frozen_batch_norm),
        # Adam's usual epsilon: slim's 1.0 suits RMSProp and keeps Adam from learning (docs/training.md)
        optimization=OptimizationSettings(optimizer=recipe.optimizer, opt_epsilon=1e-7,
                                          weight_decay=recipe.weight_decay),
        schedule=ScheduleSettings(learning_rate=learning_rate, learning_rate_decay_type="fixed",
                                  batch_size=recipe.batch_size))


def _latest_checkpoint(run_dir):
    from fgtf import runs

    return runs.latest_checkpoint(run_dir)


def _read_json(path):
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)
