"""python -m fgtf.transfer.rank (fgtf rank): backbones of different feature
sizes ranked for a target, sources ranked by OTDD and EMD, the table and its
CSV / JSON / PNG, and misuse as one line with exit 2."""
import csv
import json

import numpy as np
import pytest

from cli_helpers import frameworks_imported, run_cli
from fgtf import cli
from fgtf.transfer import rank
from fgtf.transfer import transferability as tr
from fgtf.transfer.feature_store import save_features


def _features(rng, labels, dim, separation):
    centres = rng.normal(size=(labels.max() + 1, dim))
    return (separation * centres[labels] + rng.normal(size=(len(labels), dim))).astype(np.float32)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Two networks' features of the target `birds` (8-d, well separated, with
    probabilities; 5-d, hardly), and, in the first folder, two source
    datasets: `near` (the target's classes again) and `far`."""
    root = tmp_path_factory.mktemp("rank")
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 15)
    good, poor = root / "good_net", root / "poor_net"
    target = _features(rng, labels, 8, 3.0)
    logits = 4.0 * np.eye(6)[labels + 1] + rng.normal(size=(len(labels), 6))
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    save_features(good, "birds", "train", target, labels, probabilities=probabilities)
    save_features(poor, "birds", "train", _features(rng, labels, 5, 0.3), labels)
    save_features(good, "near", "train", target + rng.normal(size=target.shape) * 0.3, labels)
    save_features(good, "far", "train", target + 25.0, labels)
    return {"good": str(good), "poor": str(poor), "root": root, "target": target, "labels": labels,
            "probabilities": probabilities}


def test_backbones_every_metric_ranks_the_separable_network_first(folders, tmp_path, capsys):
    rank.main(["--target", "birds", "--features", f"{folders['good']},{folders['poor']}", "--out", str(tmp_path)])
    printed = capsys.readouterr().out
    table = json.loads((tmp_path / "rank.json").read_text())
    assert table["candidates"] == ["good_net", "poor_net"]
    assert table["metrics"] == [m for m in rank.TARGET_METRICS if m not in ("leep", "nce")]
    assert "left out leep, nce: " in printed and "poor_net holds no birds probabilities" in printed
    assert all(table["ranks"][m] == [1, 2] for m in table["metrics"]), table["ranks"]
    assert table["scores"]["logme"][0] == pytest.approx(tr.logme(folders["target"], folders["labels"]))
    assert table["settings"]["target"] == "birds" and table["settings"]["split"] == "train"
    assert f"{table['scores']['sfda'][0]:.4g} (1)" in printed
    with open(tmp_path / "rank.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 * len(table["metrics"]) and rows[0]["metric"] == "logme" and rows[0]["rank"] == "1"
    assert (tmp_path / "rank.png").read_bytes().startswith(b"\x89PNG")


def test_probabilities_give_leep_and_nce(folders, tmp_path):
    rank.main(["--target", "birds", "--features", folders["good"], "--metrics", "leep,nce", "--out", str(tmp_path)])
    table = json.loads((tmp_path / "rank.json").read_text())
    assert table["scores"]["leep"] == [pytest.approx(tr.leep(folders["probabilities"], folders["labels"]), rel=1e-6)]


def test_sources_are_ranked_by_otdd_and_emd_and_the_settings_recorded(folders, tmp_path, capsys):
    rank.main(["--target", "birds", "--features", folders["good"], "--sources", "far,near", "--min_images", "1",
               "--max_samples", "50", "--out", str(tmp_path)])
    table = json.loads((tmp_path / "rank.json").read_text())
    assert table["candidates"] == ["far", "near"] and table["metrics"] == ["otdd", "emd_similarity"]
    assert table["ranks"] == {"otdd": [2, 1], "emd_similarity": [2, 1]}
    assert table["scores"]["otdd"][0] > table["scores"]["otdd"][1]  # a distance: lower is closer
    assert table["settings"]["min_images"] == 1 and table["settings"]["max_samples"] == 50
    assert "otdd (lower)" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["--metrics", "logme,bleu"], "argument --metrics: unknown metric 'bleu'; choose from logme"),
    (["--metrics", "leep"], "leep read the source classifier's softmax, which {poor} does not hold for birds"),
    (["--metrics", "otdd"], "otdd compare a source dataset with the target: pass --sources"),
    (["--sources", "near"], "--sources compares source datasets in one feature space: give one --features folder"),
    (["--features", "{good}", "--sources", "near", "--metrics", "logme"], "logme score networks: leave --sources out"),
    (["--features", "{good}", "--sources", "nowhere"], "nowhere_feature_train.npy is missing"),
    (["--target", "cars"], "cars_feature_train.npy is missing"),
    (["--features", "{good}", "--sources", "near", "--metrics", "emd_similarity"],
     "emd_similarity of near: no source class has at least min_images=200 images"),
    (["--max_samples", "0"], "argument --max_samples: must be an integer of at least 1"),
])
def test_misuse_is_one_line_exit_2(folders, tmp_path, capsys, args, message):
    argv = ["--target", "birds", "--features", f"{folders['good']},{folders['poor']}", "--out", str(tmp_path)]
    with pytest.raises(SystemExit) as exit_info:
        rank.main(argv + [a.format(**folders) for a in args])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("python -m fgtf.transfer.rank: error: ") and message.format(**folders) in error
    assert not (tmp_path / "rank.json").exists()


def test_fgtf_rank_and_help(folders, capsys):
    assert cli.COMMANDS["rank"][0] == "fgtf.transfer.rank"
    code, out, err, _ = run_cli("fgtf.transfer.rank", "--help")
    assert code == 0 and err == "" and "--sources" in out and "(default: 1000)" in out
    assert frameworks_imported("fgtf.transfer.rank", "--help") == set()
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["rank", "--target", "birds", "--features", folders["good"], "--metrics", "nce", "--split", "test"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("fgtf rank: error: argument --split")
