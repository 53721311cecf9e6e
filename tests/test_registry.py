"""The model registry's records: one per network, and what callers read from them."""
import inspect

import pytest

from fgtf import models


@pytest.mark.parametrize("name", models.list_models())
def test_every_record_names_an_importable_builder_and_an_end_point(name):
    record = models.model_record(name)
    builder = models.get_builder(name)
    assert callable(builder)
    assert isinstance(record.feature_endpoint, str) and record.feature_endpoint
    assert models.feature_endpoint(name) == record.feature_endpoint
    # The capability is recorded, not read off the builder by callers: keep the two in step.
    assert record.aux_logits == ("aux_logits" in inspect.signature(builder).parameters)


def test_every_built_in_network_records_its_minimum_size():
    # tests/test_model_contract.py builds each network at this size and checks one pixel less is refused.
    built_in = {name: record for name, record in models._MODELS.items() if not callable(record.builder)}
    assert len(built_in) >= 12 and all(record.min_size for record in built_in.values())


def test_aux_logits_need_the_inception_minimum_size():
    assert models.has_aux_logits("inception_v3")
    assert models.has_aux_logits("inception_v3", models.MIN_AUX_LOGITS_SIZE)
    assert not models.has_aux_logits("inception_v3", models.MIN_AUX_LOGITS_SIZE - 1)
    assert not models.has_aux_logits("resnet_v2_50", 299)
    assert not models.has_aux_logits("small_cnn")


def test_register_model_reads_aux_logits_from_the_builder_unless_told(model_registry):

    def with_aux(include_top=True, aux_logits=False):
        raise AssertionError("not built here")

    def without_aux(include_top=True):
        raise AssertionError("not built here")

    model_registry("with_aux", with_aux, "features")
    model_registry("without_aux", without_aux, "features")
    model_registry("told", with_aux, "features", aux_logits=False)
    assert models.model_record("with_aux").aux_logits
    assert not models.model_record("without_aux").aux_logits
    assert not models.has_aux_logits("told", 299)
    assert models.get_builder("without_aux") is without_aux


def test_an_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown model 'nope'; known models: .*inception_v3"):
        models.model_record("nope")
