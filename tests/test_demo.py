"""The main job on a tiny world: every summary.json field, the figure, and a
rerun that resumes instead of training again, and one with another recipe
that retrains only what the recipe changes."""
import dataclasses
import json
import os

import pytest

from fgtf import demo, study
from fgtf.study import Recipe

TINY_WORLD = dict(source_classes=12, max_source_per_class=8, min_source_per_class=2, source_val_per_class=2,
                  target_classes=4, target_train_per_class=4, target_val_per_class=4)
TINY_RECIPE = Recipe(image_size=32, batch_size=16, pretrain_epochs=1, finetune_last_steps=3, finetune_all_steps=3)
TARGET_FIELDS = {"name", "family", "dataset_dir", "classes", "emd", "similarity", "probe_top1", "finetune_top1",
                 "scratch_top1"}


@pytest.mark.slow
def test_demo_writes_the_summary_and_figure_and_resumes(tmp_path, capsys):
    run_dir = tmp_path / "runs" / "demo"
    summary = demo.run_demo(str(tmp_path / "data"), str(run_dir), recipe=TINY_RECIPE, num_workers=1,
                            world_options=TINY_WORLD)

    with open(run_dir / demo.SUMMARY_FILE) as handle:
        stored = json.load(handle)
    assert stored == json.loads(json.dumps(summary))
    assert {"seed", "wall_seconds", "peak_rss_mib", "source", "targets"} <= set(stored)
    assert stored["seed"] == 0 and stored["wall_seconds"] > 0 and stored["peak_rss_mib"] > 100
    assert {"dataset_dir", "classes", "train_images"} <= set(stored["source"])
    assert stored["source"]["classes"] == 12
    families = [t["family"] for t in stored["targets"]]
    assert len(families) >= 4 and len(set(families)) == len(families)
    for target in stored["targets"]:
        assert TARGET_FIELDS <= set(target)
        assert target["classes"] == 4 and os.path.isdir(target["dataset_dir"])
        for key in ("probe_top1", "finetune_top1", "scratch_top1"):
            assert 0.0 <= target[key] <= 1.0
        assert target["emd"] > 0 and 0 < target["similarity"] < 1
    with open(run_dir / demo.FIGURE_FILE, "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    table = demo.format_summary(summary)
    assert all(t["name"] in table for t in stored["targets"])

    capsys.readouterr()
    again = demo.run_demo(str(tmp_path / "data"), str(run_dir), recipe=TINY_RECIPE, num_workers=1,
                          world_options=TINY_WORLD)
    out = capsys.readouterr().out
    assert "training steps" not in out, "a finished study trained again"
    assert again["targets"] == summary["targets"]

    # Another recipe retrains the runs it changes instead of resuming them.
    changed = dataclasses.replace(TINY_RECIPE, finetune_all_steps=4)
    demo.run_demo(str(tmp_path / "data"), str(run_dir), recipe=changed, num_workers=1, world_options=TINY_WORLD)
    out = capsys.readouterr().out
    assert "finetune_all was trained with other settings" in out and "training steps 0 -> 4" in out
    assert "scratch was trained with other settings" in out  # its budget is both stages' steps
    assert "finetune_last was trained with" not in out and "source was trained with" not in out


def test_demo_help_is_fast_and_names_the_outputs(capsys):
    with pytest.raises(SystemExit) as exit_info:
        demo.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "summary.json" in out and "--seed" in out


def test_demo_refuses_zero_workers(capsys):
    with pytest.raises(SystemExit) as exit_info:
        demo.main(["--num_workers", "0"])
    assert exit_info.value.code == 2
    assert "--num_workers" in capsys.readouterr().err


def test_a_study_folder_of_another_world_starts_afresh(tmp_path, capsys):
    folder = tmp_path / "seed0"
    world = {"format_version": 2, "arguments": {"seed": 0}}
    study.start(str(folder), world)
    (folder / "source").mkdir()
    study.start(str(folder), json.loads(json.dumps(world)))
    assert (folder / "source").is_dir() and "afresh" not in capsys.readouterr().out

    redrawn = {**world, "format_version": 3}  # the same options, images drawn by a newer fgtf
    study.start(str(folder), redrawn)
    assert "holds runs of another world; starting it afresh" in capsys.readouterr().out
    assert not (folder / "source").exists()
    assert json.loads((folder / study.STUDY_WORLD).read_text()) == redrawn


def test_a_study_folder_that_cannot_be_written_is_a_user_error(tmp_path):
    from fgtf.errors import UserError

    (tmp_path / "runs").write_text("a file where the run folder should be")
    with pytest.raises(UserError, match="cannot write the study folder"):
        study.start(str(tmp_path / "runs" / "seed0"), {"format_version": 2})
