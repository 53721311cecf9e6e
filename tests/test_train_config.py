"""The training config in sections (fgtf.train_config): every flag of
`fgtf.train` is one field of one section (the section its --help group
names), a head's options are its own, the whole config round-trips through
run_config.json's JSON, and run folders that did not record it still load."""
import dataclasses
import json

import pytest

from fgtf import runs, train
from fgtf.models import heads
from fgtf.train_config import HeadSettings, TrainConfig, config_defaults
from fgtf.errors import UserError

LOCATIONS = ["--dataset_dir", "data", "--run_dir", "run"]


def _config(*flags):
    return TrainConfig.from_flags(train.build_parser().parse_args([*LOCATIONS, *flags]))


def test_each_flag_is_one_field_of_the_section_its_help_group_names():
    parser = train.build_parser()
    head_dests = {flag.dest for name in heads.HEAD_CHOICES for flag in train.head_flags(name)}
    sections = {section.name: {field.name for field in dataclasses.fields(section.type)}
                for section in dataclasses.fields(TrainConfig)}
    sections["head"] = {"head"} | head_dests
    for group in parser._action_groups:
        dests = {action.dest for action in group._group_actions if action.dest not in ("help", "recipe")}
        if not dests:
            continue
        section = group.title.replace("-", "_").replace(" during training", "")
        assert dests == sections[section], f"--help group {group.title!r} and section {section} differ"
    assert set(config_defaults()) == set().union(*sections.values()) - {"dataset_dir", "run_dir"}


def test_one_name_per_setting_in_code_as_in_flags():
    config = _config("--image_size", "448", "--model", "resnet50", "--checkpoint", "start.pth", "--no_ema")
    assert (config.run.run_dir, config.data.image_size, config.model.model) == ("run", 448, "resnet50")
    assert config.fine_tuning.checkpoint == "start.pth" and config.fine_tuning.no_ema
    # the slim names stay as aliases of the same fields
    assert _config("--train_dir", "r2", "--train_image_size", "299").run.run_dir == "r2"


def test_a_run_keeps_the_options_of_its_own_head_only():
    assert _config().head == HeadSettings("none", {})
    assert _config("--head", "sef", "--sef_groups", "3", "--sam_target", "gradcam").head == HeadSettings(
        "sef", {"sef_groups": 3})
    sam = _config("--head", "sam", "--sam_bilinear", "none").head
    assert sam.options == {"sam_target": "cam", "sam_bilinear": "none"}
    assert heads.head_options(sam.head, sam.options, "cub_200") == {"target": "cam", "bilinear": None}
    assert heads.head_options("cle", {}, "cub_200")["loss_weights"]


def test_the_whole_config_round_trips_through_json():
    config = _config("--head", "sam", "--learning_rate_multipliers", "fc=10,layer4=2", "--milestone_steps",
                     "100,200", "--learning_rate_decay_type", "multistep", "--eval_every_steps", "50")
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert config.replace(data__image_size=64, schedule__batch_size=8).data.image_size == 64


@pytest.mark.parametrize("data, problem", [
    ({"run": {"run_dir": "r"}}, "has no data section"),
    ({"data": {"dataset_dir": "d"}, "run": {"run_dir": "r"}, "schedule": {"learning_rat": 1}},
     "section schedule has settings this fgtf does not know: learning_rat"),
    ([], "is not a training config"),
])
def test_a_config_fgtf_did_not_write_is_one_sentence(data, problem):
    with pytest.raises(UserError, match=problem):
        TrainConfig.from_dict(data)


def test_run_folders_that_did_not_record_the_config_still_load(tmp_path):
    older = {"model_name": "inception_v3", "num_classes": 200, "image_size": 299, "dataset_name": "cub_200"}
    (tmp_path / runs.RUN_CONFIG).write_text(json.dumps(older))
    config = runs.load_run_config(str(tmp_path))
    assert (config.model_name, config.training, config.training_config()) == ("inception_v3", None, None)


def test_changed_names_what_differs_from_the_defaults():
    config = _config("--image_size", "64", "--head", "sef", "--learning_rate_multipliers", "fc=10")
    assert config.changed() == {"data": {"dataset_dir": "data", "image_size": 64}, "run": {"run_dir": "run"},
                                "head": {"head": "sef", "options": {"sef_groups": 4}},
                                "optimization": {"learning_rate_multipliers": [["fc", 10.0]]}}
