"""The CPU-sized backbone registered as small_cnn."""
import numpy as np

from fgtf.models import build_model, feature_endpoint


def test_small_cnn_shapes_and_feature_end_point():
    model = build_model("small_cnn", classes=7, input_shape=(64, 64, 3), classifier_activation=None)
    assert model.output_shape == (None, 7)
    assert model.get_layer(feature_endpoint("small_cnn")).output.shape[1:] == (8, 8, 128)
    headless = build_model("small_cnn", include_top=False, pooling="avg", input_shape=(96, 96, 3))
    features = headless.predict_on_batch(np.zeros((2, 96, 96, 3), np.float32))
    assert features.shape == (2, 128)
