"""study.transferability on a tiny world: every score of a source x target
pair (the source network's features and softmax of the target; OTDD and
EMD of a subset of the pool in the reference network's features), kept and
not computed again."""
import json
import math

import numpy as np
import pytest

from fgtf import study
from fgtf.datasets.splits import read_name_list
from fgtf.datasets.synthetic import generate_world
from fgtf.transfer import domain_similarity as ds
from fgtf.transfer import transferability as tr
from fgtf.transfer.feature_store import load_features

TINY_WORLD = dict(source_classes=12, max_source_per_class=8, min_source_per_class=2, source_val_per_class=2,
                  target_classes=4, target_train_per_class=8, target_val_per_class=2)


@pytest.mark.slow
def test_every_score_of_a_pair_is_computed_once_and_kept(tmp_path, monkeypatch):
    recipe = study.Recipe(image_size=32, batch_size=16, min_images=1)
    world_dir = tmp_path / "world"
    world = generate_world(str(world_dir), seed=0, image_size=32, num_workers=1, **TINY_WORLD)
    pool = str(world_dir / world["source"]["dataset_dir"])
    target = world["targets"][0]
    target_dir = str(world_dir / target["dataset_dir"])
    pool_run = study.pretrain_source(study.convert(pool, recipe), str(tmp_path / "pool"), recipe, steps=3)
    subset = read_name_list(f"{pool}/classes.txt")[2:8]
    pair, features = tmp_path / "pair", str(tmp_path / "features")

    scores = study.transferability(pool_run, target_dir, str(pair), recipe, pool_run, pool, features,
                                   source_classes=subset, target_name=target["name"])
    assert set(scores) == set(tr.METRICS) and all(math.isfinite(v) for v in scores.values())
    x, y, _ = load_features(str(pair / "features"), "target", "train")
    assert scores["logme"] == pytest.approx(tr.logme(x, y))
    probabilities = np.load(pair / "features" / "target_probability_train.npy")
    assert probabilities.shape == (len(y), 12) and scores["leep"] == pytest.approx(tr.leep(probabilities, y))
    emd = study.domain_similarity(pool_run, pool, target_dir, features, recipe, source_classes=subset,
                                  target_name=target["name"])
    assert scores["emd_similarity"] == pytest.approx(emd["similarity"])
    source, source_labels, _ = load_features(features, "source", "train")
    kept = np.isin(source_labels, np.arange(2, 8))
    assert emd["emd"] == pytest.approx(ds.emd(*ds.class_features(source[kept], source_labels[kept] - 2),
                                              *ds.class_features(*load_features(features, target["name"], "train")[:2]),
                                              min_images=1))
    stored = json.loads((pair / "transferability.json").read_text())
    assert stored["result"] == scores and stored["settings"]["source_classes"] == subset

    monkeypatch.setattr(study, "extract", lambda *args, **kwargs: pytest.fail("a kept pair was computed again"))
    assert study.transferability(pool_run, target_dir, str(pair), recipe, pool_run, pool, features,
                                 source_classes=subset, target_name=target["name"]) == scores
