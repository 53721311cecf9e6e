"""The head table (fgtf.models.heads.HEADS): every head `fgtf.train --head`
offers builds from the trainer's default flags, is recognised from its model,
and says what its training batches and CAM need."""
import os
import subprocess
import sys

import numpy as np
import pytest

from fgtf import train
from fgtf.models import heads
from heads_helpers import tiny_backbone
from cli_helpers import REPO



def _options(head):
    """The builder's options of `head` at the trainer's default flags."""
    settings = train.TrainConfig.from_flags(train.build_parser().parse_args(["--dataset_dir", ".", "--run_dir", ".",
                                                                             "--head", head]))
    return heads.head_options(head, settings.head.options, settings.data.dataset)


@pytest.mark.parametrize("name", sorted(heads.HEADS))
def test_each_head_builds_from_the_trainers_flags(name):
    record = heads.head_record(name)
    model = heads.build_head(name, tiny_backbone(), 5, **_options(name))
    assert isinstance(model, heads.imported(record.model_class))
    assert heads.head_of(model) is record and heads.head_of(model.backbone) is None
    images = np.zeros((2, 16, 16, 3), np.float32)
    assert tuple(model(images).shape) == (2, 5)
    if record.cam_source is not None:
        feature_map_of, kernel = record.cam_source(model)
        assert tuple(feature_map_of(images).shape)[:1] == (2,) and tuple(kernel.shape)[-1] == 5
    else:
        assert set(model.attention_maps(images)) == {"predicted", "cam"}


def test_choices_and_options_come_from_the_table():
    assert heads.HEAD_CHOICES == ("none", "sef", "sam", "cle")
    assert _options("none") == {}
    assert _options("sam") == {"target": "cam", "bilinear": "single"}
    assert _options("cle") == {"loss_weights": [1.0, 1.0, 1.0]}
    with pytest.raises(ValueError, match="unknown head 'bcnn'; choose one of none, sef, sam, cle"):
        heads.head_record("bcnn")


def test_the_table_imports_no_keras():
    code = ("import sys\nfrom fgtf.models import heads\nheads.HEADS, heads.HEAD_CHOICES\n"
            "print('keras' in sys.modules, 'tensorflow' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": REPO})
    assert result.returncode == 0 and result.stdout.split() == ["False", "False"], result.stderr
