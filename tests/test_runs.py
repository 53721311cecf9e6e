"""fgtf.runs: a run folder's run_config.json read as a RunConfig, written
back byte for byte as fgtf.train writes it today; older runs that recorded
less still load."""
import pytest

from fgtf import runs
from fgtf.errors import UserError

# As fgtf.train writes it (fgtf.fileio.write_json: sorted keys, indent 2, final newline).
TODAY = """{
  "aux_logits": false,
  "batch_size": 8,
  "dataset_name": "synthetic",
  "head": "sef",
  "head_options": {
    "groups": 4
  },
  "image_size": 64,
  "label_smoothing": 0.1,
  "model_name": "small_cnn",
  "num_classes": 5,
  "num_train_examples": 40,
  "optimizer": "momentum",
  "preprocessing": "sef",
  "total_steps": 30
}
"""
# A run from before --optimizer, the head options and --preprocessing were recorded.
OLDER = """{
  "aux_logits": true,
  "batch_size": 32,
  "dataset_name": "cub_200",
  "head": "none",
  "image_size": 299,
  "label_smoothing": 0.0,
  "model_name": "inception_v3",
  "num_classes": 200,
  "num_train_examples": 5994,
  "total_steps": 1000
}
"""


def test_run_config_of_today_loads_and_saves_byte_for_byte(tmp_path):
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / runs.RUN_CONFIG).write_text(TODAY, encoding="utf-8")
    config = runs.load_run_config(str(tmp_path / "old"))
    assert config == runs.RunConfig(model_name="small_cnn", num_classes=5, image_size=64, head="sef",
                                    head_options={"groups": 4}, aux_logits=False, dataset_name="synthetic",
                                    num_train_examples=40, total_steps=30, batch_size=8, label_smoothing=0.1,
                                    optimizer="momentum", preprocessing="sef")
    runs.save_run_config(str(tmp_path), config)
    assert (tmp_path / runs.RUN_CONFIG).read_bytes() == TODAY.encode("utf-8")


def test_older_run_config_leaves_what_it_did_not_record_unset(tmp_path):
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / runs.RUN_CONFIG).write_text(OLDER, encoding="utf-8")
    config = runs.load_run_config(str(tmp_path / "old"))
    assert (config.model_name, config.num_classes, config.image_size) == ("inception_v3", 200, 299)
    assert (config.optimizer, config.head, config.head_options, config.aux_logits) == (None, "none", {}, True)
    assert "optimizer" not in config.to_dict()
    assert config.preprocessing == "inception"  # the only pipeline there was


def test_run_config_without_its_network_is_refused(tmp_path):
    (tmp_path / runs.RUN_CONFIG).write_text('{"model_name": "small_cnn", "image_size": 32}', encoding="utf-8")
    with pytest.raises(UserError, match="does not record num_classes; it was not written by fgtf.train"):
        runs.load_run_config(str(tmp_path))
