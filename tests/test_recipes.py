"""Recipes (fgtf.recipes, recipes/*.toml): every recipe resolves through its
command's own parser, its settings are the originals' (a table written here
from ../shared/spec/*.md and the CVPR 2018 train.sh), bad recipes and flags are
one sentence and exit 2, and every recipe trains a step end to end on a tiny
dataset (its network, image size and length overridden by flags)."""
import json
import os

import pytest

from fgtf import recipes
from fgtf.recipes.__main__ import main as recipes_main
from fgtf.recipes import command_of
import tiny_models

pytestmark = pytest.mark.usefixtures("tiny_models_registered")

ALL = recipes.list_recipes()
CLE_DATASETS = {  # recipe: (classes, the script's --lr, epochs) of the spec's §2.1 / §5 and scripts/run_*.sh
    "cle_cotton80": (80, 1e-3, 200), "cle_soylocal": (200, 1e-3, 200), "cle_soygene": (1110, 2e-3, 200),
    "cle_soyglobal": (1938, 1e-3, 200), "cle_afd": (4, 1e-3, 100), "cle_cub": (200, 1e-3, 40),
    **{f"cle_soyageing_r{r}": (198, 1e-3, 200) for r in (1, 3, 4, 5, 6)},
}
SEF_DATASETS = {"cub": ("cub_200", 4, "sef"), "cars": ("stanford_cars", 2, "sef_squash"),
                "dogs": ("stanford_dogs", 2, "sef_squash"), "aircraft": ("aircraft", 3, "sef")}
# spec/sef.md §1: the README's top-1 (ResNet-50, ResNet-18)
SEF_TOP1 = {"cub": (87.3, 84.8), "cars": (94.0, 91.8), "dogs": (88.8, 83.1), "aircraft": (92.1, 89.3)}


def expected_settings(name):
    """{stage: {parser destination: value}} of recipe `name`, from the specs."""
    if name.startswith("sef_"):
        suffix = name[len("sef_"):].removesuffix("_resnet18")
        dataset, groups, pipeline = SEF_DATASETS[suffix]
        # spec/sef.md §6: SGD 0.01, momentum 0.9, no weight decay, no Nesterov, StepLR(20, 0.1), 50 epochs,
        # batch 32, 448 px; groups P and the pipeline per dataset
        return {name: {"dataset": dataset, "model": "resnet18" if name.endswith("_resnet18") else "resnet50",
                       "image_size": 448, "preprocessing": pipeline, "head": "sef", "sef_groups": groups,
                       "optimizer": "momentum", "momentum": 0.9, "nesterov": False, "learning_rate": 0.01,
                       "learning_rate_decay_type": "exponential", "learning_rate_decay_factor": 0.1,
                       "num_epochs_per_decay": 20.0, "weight_decay": 0.0, "batch_size": 32, "epochs": 50.0,
                       "batch_norm_decay": 0.9, "eval_every_epochs": 1.0, "eval_split": "validation"}}
    if name.startswith(("sam_cub_", "sam_bilinear_cub_")):
        ratio = int(name.rsplit("_", 1)[1])
        # spec/sam.md §7: SGD Nesterov 0.9, wd 1e-4 on every parameter, lr 1e-3 (classifier x10), MultiStep x0.1
        # at 6k/12k/18k/24k, 30k iterations, batch 24, 224 px; §5: CAM target, single-map bilinear at HEAD
        return {name: {"dataset": "cub_200", "model": "resnet50", "image_size": 224,
                       "preprocessing": "sam", "head": "sam", "sam_target": "cam",
                       "sam_bilinear": "single" if "bilinear" in name else "none",
                       "label_ratio": None if ratio == 100 else float(ratio), "optimizer": "momentum",
                       "momentum": 0.9, "nesterov": True, "learning_rate": 0.001,
                       "learning_rate_multipliers": (("classifier", 10.0),), "weight_decay": 0.0001,
                       "weight_decay_mode": "coupled", "learning_rate_decay_type": "multistep",
                       "milestone_steps": (6000, 12000, 18000, 24000), "learning_rate_decay_factor": 0.1,
                       "max_number_of_steps": 30000, "batch_size": 24, "batch_norm_decay": 0.9,
                       # §1 item 10 and the test loop: the test set every 1,000 iterations, ten views, batches of 4
                       "eval_every_steps": 1000, "eval_views": 10, "eval_batch_size": 4}}
    if name.startswith("cle_"):
        classes, lr, epochs = CLE_DATASETS[name]
        base = lr * 12 / 512  # spec/cle_vit.md §5: lr scaled by batch 12 / 512
        # §5: AdamW (0.9, 0.999, 1e-8), decoupled wd 0.05, head x5, 20 warm-up epochs then linear to 1 %,
        # clip 5, drop path 0.5, batch 12, 448 px
        return {name: {"dataset": "cub_200" if name == "cle_cub" else "folder",
                       "num_classes": None if name == "cle_cub" else classes, "model": "swin_base",
                       "image_size": 448, "preprocessing": "cle", "head": "cle", "drop_path_rate": 0.5,
                       "optimizer": "adamw", "adam_beta1": 0.9, "adam_beta2": 0.999, "opt_epsilon": 1e-8,
                       "weight_decay": 0.05, "weight_decay_mode": "decoupled", "learning_rate": base,
                       "learning_rate_multipliers": (("head", 5.0),), "learning_rate_decay_type": "warmup_linear",
                       "warmup_epochs": 20.0, "end_learning_rate": base / 100, "clip_gradient_norm": 5.0,
                       "batch_size": 12, "epochs": float(epochs),
                       # the test set after every epoch (--eval-batch-size 36)
                       "eval_every_epochs": 1.0, "eval_batch_size": 36}}
    if name.startswith("simtrans_"):
        # spec/simtrans.md §2 (the _scripts/CUB commands) and §3: SGD momentum 0.9, wd 1e-4 on every weight
        schedule = {"weight_decay": 0.0001, "seed": 0}
        return {"pretrain": {**schedule, "model": "resnet50", "image_size": 224, "preprocessing": "simtrans",
                             "epochs": 30, "lr": 0.0001, "lr_interval": 20, "batch_size": 64},
                "simnet": {**schedule, "lr": 0.005, "domain_lr": 0.005, "batch_size": 50, "lr_interval": 25,
                           "epochs": 50, "batch_classes": 20, "batch_classes_novel": 2},
                "weights": {},
                "train": {**schedule, "lr": 0.0001, "batch_size": 8, "epochs": 60, "lr_interval": 20,
                          "weighting": "savg1", "graph_epochs": 100, "graph_weighting": "avg1",
                          "graph_batch_size": 128, "alpha": 0.1, "mu": -4.0, "eye": 1, "classes": "novel"},
                "eval": {}}
    if name == "cvpr18_cub_inception_v3":
        # the original train.sh (and train.py's defaults: weight decay 4e-5, staircase exponential decay)
        shared = {"dataset": "cub_200", "model": "inception_v3", "image_size": 299,
                  "optimizer": "momentum", "momentum": 0.9, "learning_rate_decay_type": "exponential",
                  "learning_rate_decay_factor": 0.1, "num_epochs_per_decay": 10.0, "weight_decay": 0.00004,
                  "weight_decay_mode": "slim", "batch_size": 64, "max_number_of_steps": 2810,
                  "end_learning_rate": None, "scope_matching": "substring", "frozen_batch_norm": "train"}
        return {"last_layer": {**shared, "learning_rate": 0.01, "checkpoint_exclude_scopes": "Logits",
                               "trainable_scopes": "Logits"},
                "all_layers": {**shared, "learning_rate": 0.001, "checkpoint_exclude_scopes": "",
                               "trainable_scopes": ""}}
    if name == "cvpr18_inat_inception_v3_longtail":
        return {name: {"dataset": "inat2017", "model": "inception_v3", "image_size": 299,
                       "optimizer": "momentum", "weight_decay": 0.00004, "batch_size": 64}}
    raise AssertionError(f"recipe {name} has no row in this test's table of the specs")


def resolved(recipe, stage):
    """The stage's flags as its command parses a command line that gives only the locations."""
    parser = recipes.check_stage(recipe, stage, command_of(recipe))
    given = ["--run_dir", "RUN"] + (["--dataset_dir", "DATA"] if stage.step in (None, "pretrain") else [])
    return vars(parser.parse_args(given))


def test_recipes_folder_holds_every_family():
    families = {name.split("_")[0] for name in ALL}
    assert families == {"cvpr18", "sef", "sam", "cle", "simtrans"}
    assert len(ALL) == 34


@pytest.mark.parametrize("name", ALL)
def test_recipe_settings_are_the_originals(name):
    recipe = recipes.load_recipe(name)
    expected = expected_settings(name)
    assert [stage.name for stage in recipe.stages] == list(expected)
    for stage in recipe.stages:
        flags = resolved(recipe, stage)
        wrong = {dest: (flags.get(dest, "<no such flag>"), value) for dest, value in expected[stage.name].items()
                 if flags.get(dest, "<no such flag>") != value}
        assert not wrong, f"{name}, stage {stage.name}: resolved vs spec {wrong}"
    assert recipe.original_command and recipe.paper["title"] and recipe.checkpoint


def test_reported_numbers_are_the_papers():
    for suffix, (top50, top18) in SEF_TOP1.items():
        assert recipes.load_recipe(f"sef_{suffix}").reported_top1 == top50
        assert recipes.load_recipe(f"sef_{suffix}_resnet18").reported_top1 == top18
    # the other specs say their papers' numbers are not in the files at hand: no recipe invents one
    assert all(recipes.load_recipe(name).reported_top1 is None for name in ALL if not name.startswith("sef_"))


def test_stages_start_from_the_stage_before():
    recipe = recipes.load_recipe("cvpr18_cub_inception_v3")
    assert recipe.staged and recipe.stages[1].start_from == "last_layer"
    simtrans = recipes.load_recipe("simtrans_cub")
    assert [stage.step for stage in simtrans.stages] == ["pretrain", "simnet", "weights", "train", "eval"]
    novel = resolved(simtrans, simtrans.stages[0])["novel_classes"]
    # spec/simtrans.md §1: the 50 classes of data/meta/CUB/testclasses.txt (CUB folder number - 1)
    assert len(novel) == 50 and novel[:3] == [42, 110, 22] and novel[-1] == 167


def test_listing_and_one_recipe(capsys):
    recipes_main([])
    table = capsys.readouterr().out
    assert all(name in table for name in ALL) and "87.3" in table and "SEF (IEEE SPL 2020)" in table
    recipes_main(["--differs"])
    listed = capsys.readouterr().out
    assert all(item in listed for name in ALL for item in recipes.load_recipe(name).differs)
    recipes_main(["sam_bilinear_cub_10"])
    shown = capsys.readouterr().out
    assert "--nesterov" in shown and "--milestone_steps 6000,12000,18000,24000" in shown
    assert "differs:" in shown and "train_10.txt" in shown


def write_recipe(path, settings, extra=""):
    lines = [f"{key} = {json.dumps(value)}" for key, value in settings.items()]
    path.write_text('command = "train"\ndataset = "tiny"\noriginal_command = "none"\ndiffers = []\n' + extra
                    + '[paper]\nname = "t"\ntitle = "t"\nvenue = "v"\nyear = 2026\ntable = "t"\n[settings]\n'
                    + "\n".join(lines) + "\n")
    return str(path)


@pytest.mark.parametrize("settings, extra, message", [
    ({"no_such_flag": 1}, "", "sets --no_such_flag, which fgtf train does not take"),
    ({"optimizer": "adagrad"}, "", "--optimizer 'adagrad' is not one of"),
    ({"learning_rate": "fast"}, "", "--learning_rate 'fast' is not valid"),
    ({"nesterov": 1}, "", "--nesterov is a switch: give true or false"),
    ({"dataset_dir": "data"}, "", "sets --dataset_dir, which is the user's to give"),
    ({"train_dir": "runs/x"}, "", "sets --train_dir, which is the user's to give"),
    ({}, "colour = 3\n", "unknown key 'colour'"),
])
def test_a_bad_recipe_is_one_sentence_and_exit_2(tmp_path, capsys, settings, extra, message):
    path = write_recipe(tmp_path / "bad.toml", settings, extra)
    for command in (["recipes", path], ["train", "--recipe", path, "--dataset_dir", str(tmp_path),
                                        "--run_dir", str(tmp_path / "run")]):
        code, error = exit_code(capsys, *command)
        assert code == 2 and message in error and "Traceback" not in error and error.count("\n") == 1


def test_recipe_mistakes_on_the_command_line_exit_2(tmp_path, capsys):
    code, error = exit_code(capsys, "train", "--recipe", "no_such_recipe", "--dataset_dir", str(tmp_path),
                            "--run_dir", str(tmp_path))
    assert code == 2 and "no recipe 'no_such_recipe'" in error and "sef_cub" in error
    code, error = exit_code(capsys, "train", "--recipe", "sef_cub", "--dataset_dir", str(tmp_path),
                            "--run_dir", str(tmp_path))
    assert code == 2 and "starts from resnet50-19c8e357.pth" in error and "--checkpoint" in error
    code, error = exit_code(capsys, "train", "--recipe", "sef_cub", "--dataset_dir", str(tmp_path / "nowhere"),
                            "--run_dir", str(tmp_path / "run"), "--checkpoint", str(tmp_path / "start.pth"))
    assert code == 2 and "does not exist" in error
    assert not (tmp_path / "run").exists(), "a command line the first stage refuses left a run folder"
    code, error = exit_code(capsys, "train", "--recipe", "simtrans_cub", "--dataset_dir", str(tmp_path),
                            "--run_dir", str(tmp_path))
    assert code == 2 and "is run by fgtf simtrans" in error
    code, error = exit_code(capsys, "simtrans", "--recipe", "simtrans_cub", "--run_dir", str(tmp_path),
                            "--no_such_flag", "3")
    assert code == 2 and "no step of recipe simtrans_cub takes --no_such_flag" in error
    code, error = exit_code(capsys, "simtrans", "--recipe", "simtrans_cub", "train", "--run_dir", str(tmp_path))
    assert code == 2 and "give no step name" in error
    (tmp_path / "broken.toml").write_text("command = \n")
    code, error = exit_code(capsys, "recipes", str(tmp_path / "broken.toml"))
    assert code == 2 and "is not valid TOML" in error


def exit_code(capsys, command, *argv):
    from fgtf.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main([command, *argv])
    return exit_info.value.code, capsys.readouterr().err


# ------------------------------------------------------------------ end to end on a tiny dataset

@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Tiny shards and a tiny_net run to start from (any recipe's --checkpoint here)."""
    from fgtf import train

    root = tmp_path_factory.mktemp("recipes")
    shards = tiny_models.tiny_synthetic_tfrecords(root, classes=4, train_per_class=8, val_per_class=4,
                                                  num_shards=1)
    start = str(root / "start")
    train.main(["--dataset_dir", shards, "--run_dir", start, "--model", "tiny_net", "--image_size", "32",
                "--batch_size", "8", "--max_number_of_steps", "1", "--optimizer", "momentum"])
    return {"shards": shards, "start": start}


# Overrides that make a recipe tiny: the network, image size and length, and what the tiny network has not.
TINY = ["--model", "tiny_net", "--image_size", "32", "--batch_size", "4", "--max_number_of_steps", "1",
        "--log_every_n_steps", "1"]
# One recipe per family trains through its own input pipeline; the others, which repeat a family's settings
# with other values, through the inception pipeline (a tenth of the time: the seeds' pipelines are
# tests/test_seed_preprocessing.py's).
FAST = ["cvpr18_cub_inception_v3", "sef_cub", "sam_bilinear_cub_10", "cle_cub"]


@pytest.mark.parametrize("name", [pytest.param(name, marks=() if name in FAST else pytest.mark.slow)
                                  for name in ALL if not name.startswith("simtrans_")])
def test_every_train_recipe_trains_a_step(tiny, tmp_path, capsys, name):
    from fgtf import train

    run = tmp_path / "run"
    extra = ["--drop_path_rate", "0"] if name.startswith("cle_") else []
    if name not in FAST:  # the inception pipeline has one test view
        extra += ["--preprocessing", "inception"] + (["--eval_views", "1"] if name.startswith("sam") else [])
    if name == "cvpr18_inat_inception_v3_longtail":  # its start has the target's classifier: here the tiny run's 4
        extra += ["--num_classes", "4"]
    train.main(["--recipe", name, "--dataset_dir", tiny["shards"], "--run_dir", str(run),
                "--checkpoint", tiny["start"], *TINY, *extra])
    recipe = recipes.load_recipe(name)
    record = json.loads((run / recipes.RECIPE_RECORD).read_text())
    assert record["recipe"] == name and [s["name"] for s in record["stages"]] == [s.name for s in recipe.stages]
    for stage in record["stages"]:
        assert os.path.isfile(os.path.join(stage["run_dir"], "train_done.json"))
        assert stage["settings"]["model"] == "tiny_net" and stage["settings"]["max_number_of_steps"] == 1
    printed = capsys.readouterr().out
    assert "step 1/1" in printed and f"initialised from {tiny['start']}" in printed


def test_stages_run_in_order_record_their_settings_and_a_finished_one_is_skipped(tiny, tmp_path, capsys):
    from fgtf import train

    run = tmp_path / "run"
    argv = ["--recipe", "cvpr18_cub_inception_v3", "--dataset_dir", tiny["shards"], "--run_dir", str(run),
            "--checkpoint", tiny["start"], *TINY]
    train.main(argv)
    first = capsys.readouterr().out
    assert first.index("stage last_layer") < first.index("stage all_layers")
    assert f"initialised from {run / 'last_layer'}" in first
    stages = json.loads((run / "recipe.json").read_text())["stages"]
    assert stages[0]["settings"]["trainable_scopes"] == "Logits" and stages[0]["settings"]["learning_rate"] == 0.01
    assert stages[1]["settings"]["checkpoint"] == str(run / "last_layer")
    assert stages[1]["settings"]["learning_rate"] == 0.001
    train.main(argv)
    again = capsys.readouterr().out
    assert again.count("finished before with these settings") == 2 and "step 1/1" not in again
    # a flag given overrides the recipe in every stage; the stages run again (resumed to the new length)
    train.main(argv + ["--max_number_of_steps", "2", "--learning_rate", "0.02"])
    longer = capsys.readouterr().out
    assert longer.count("step 2/2") == 2 and "lr 0.02" in longer
    settings = [s["settings"] for s in json.loads((run / "recipe.json").read_text())["stages"]]
    assert [s["learning_rate"] for s in settings] == [0.02, 0.02]


def test_a_flag_in_other_units_replaces_the_recipes(tiny, tmp_path):
    """The recipe's --max_number_of_steps gives way to --epochs on the command line (and --milestone_steps
    to --milestone_epochs: argparse's mutually exclusive groups)."""
    recipe = recipes.load_recipe("sam_cub_10")
    parser = command_of(recipe).parser(recipe.stages[0])
    recipes._apply(parser, recipe, recipe.stages[0], given={"epochs", "milestone_epochs"})
    flags = parser.parse_args(["--dataset_dir", "D", "--run_dir", "R", "--epochs", "3", "--milestone_epochs", "1,2"])
    assert flags.max_number_of_steps is None and flags.epochs == 3.0
    assert flags.milestone_steps == () and flags.milestone_epochs == (1.0, 2.0)


def test_simtrans_recipes_differ_only_in_their_data():
    """So simtrans_cub's tiny run below, which overrides --dataset and --novel_classes, runs the others too."""
    def steps(name):
        recipe = recipes.load_recipe(name)
        return [{k: v for k, v in resolved(recipe, stage).items() if k not in ("dataset", "novel_classes")}
                for stage in recipe.stages]

    assert steps("simtrans_car") == steps("simtrans_cub") == steps("simtrans_air")


@pytest.mark.slow
def test_the_simtrans_recipe_runs_its_steps(tiny, tmp_path, capsys):
    name = "simtrans_cub"
    from fgtf.datasets.synthetic import generate
    from fgtf.simtrans.__main__ import main

    data = tmp_path / "noisy"
    generate(str(data), classes=4, train_per_class=6, val_per_class=2, image_size=40, label_noise=0.4,
             novel_classes=2, num_workers=1)
    run = tmp_path / "run"
    argv = ["--recipe", name, "--dataset_dir", str(data), "--run_dir", str(run), "--checkpoint", tiny["start"],
            "--dataset", "synthetic", "--novel_classes", "2,3", "--model", "tiny_net", "--image_size", "32",
            "--epochs", "1", "--graph_epochs", "1", "--graph_batch_size", "4", "--batch_size", "4",
            "--batch_classes", "2", "--eval_batches", "1", "--eval_classes", "2", "--eval_images", "2"]
    main(argv)
    printed = capsys.readouterr().out
    for line in ("[pretrain] epoch 1", "[simnet] epoch 1/1", "[weights] savg1", "[train/graph] epoch 2",
                 "[eval] novel: top-1 accuracy"):
        assert line in printed
    record = json.loads((run / recipes.RECIPE_RECORD).read_text())
    assert [s["name"] for s in record["stages"]] == ["pretrain", "simnet", "weights", "train", "eval"]
    assert record["stages"][1]["settings"]["beta"] == 0.1 and record["stages"][3]["settings"]["mu"] == -4.0
    main(argv)
    assert capsys.readouterr().out.count("finished before with these settings") == 5
