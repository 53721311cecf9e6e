"""Inception-ResNet-v2 (+SE) ports against the TF-Slim references, plus input
sizes, pooling and the aux head."""
import keras
import numpy as np
import pytest

from conftest import check_slim_reference, relative_l2
from fgtf.models import feature_endpoint
from fgtf.models.inception_resnet_v2 import InceptionResNetV2


@pytest.mark.reference
@pytest.mark.parametrize("net", ["inception_resnet_v2", "inception_resnet_v2_se"])
def test_matches_slim_reference(net, slim_checkpoint, slim_reference):
    check_slim_reference(net, slim_checkpoint(net), slim_reference(net))


def test_headless_at_448_loads_a_full_checkpoint_and_pools(slim_checkpoint):
    """include_top=False leaves `Logits` and `AuxLogits` of the checkpoint out;
    pooling='max' reduces the 12x12 feature map of a 448 input."""
    model = InceptionResNetV2(include_top=False, pooling="max", input_shape=(448, 448, 3),
                              weights=slim_checkpoint("inception_resnet_v2"))
    assert model.output_shape == (None, 1536)
    sizes = {name: model.get_layer(name).output.shape[1:] for name in ("Mixed_5b", "Mixed_6a", "Mixed_7a")}
    assert sizes == {"Mixed_5b": (53, 53, 320), "Mixed_6a": (26, 26, 1088), "Mixed_7a": (12, 12, 2080)}
    assert model.get_layer(feature_endpoint("inception_resnet_v2")).output.shape == (None, 12, 12, 1536)
    assert not np.allclose(np.asarray(model.get_layer("Conv2d_7b_1x1.BatchNorm").beta), 0.0)


def test_logits_and_aux_logits_at_448_use_spatial_means(slim_checkpoint):
    """Slim's 8x8 average pool and the aux head's flatten of a 1x1 map become
    spatial means, so a 448 input (12x12 features, 4x4 aux map) still classifies."""
    model = InceptionResNetV2(input_shape=(448, 448, 3), classes=10, classifier_activation=None,
                              aux_logits=True, weights=slim_checkpoint("inception_resnet_v2"))
    maps = [model.get_layer(name).output for name in (feature_endpoint("inception_resnet_v2"),
                                                      "AuxLogits.Conv2d_2a_5x5.Relu")]
    probe = keras.Model(model.input, maps + model.outputs)
    images = np.random.default_rng(1).uniform(-1, 1, (2, 448, 448, 3)).astype(np.float32)
    features, aux_map, logits, aux_logits = (np.asarray(o) for o in probe(images, training=False))
    assert features.shape == (2, 12, 12, 1536) and aux_map.shape == (2, 4, 4, 768)
    for head, feature_map, layer in ((logits, features, "Logits.Logits"), (aux_logits, aux_map, "AuxLogits.Logits")):
        kernel, bias = (np.asarray(w) for w in model.get_layer(layer).weights)
        assert relative_l2(head, feature_map.mean(axis=(1, 2)) @ kernel + bias) < 1e-5


def test_too_small_input_is_refused():
    with pytest.raises(ValueError, match="below the smallest"):
        InceptionResNetV2(input_shape=(74, 74, 3))
    # the aux head's fixed 5x5 pool and conv need the 17x17 map of a 299 input
    with pytest.raises(ValueError, match="below the smallest"):
        InceptionResNetV2(input_shape=(298, 298, 3), aux_logits=True)


def test_aux_logits_need_the_top():
    with pytest.raises(ValueError, match="include_top"):
        InceptionResNetV2(include_top=False, aux_logits=True)
