"""Heads that wrap an fgtf backbone's feature map into a trainable
`keras.Model` with the method's own losses (computed in the model, so
`compile` + `fit`, `evaluate`, `predict`, `.keras` saving and tf.distribute
work unchanged):

    backbone = fgtf.models.build_model("resnet_v2_50", include_top=False)
    model = build_sef(backbone, num_classes=200, groups=4)
    model = build_sam(backbone, num_classes=200, target="cam", bilinear="single")
"""
from fgtf.models.heads.base import HeadModel
from fgtf.models.heads.sam import SAM, build_sam
from fgtf.models.heads.sef import SEF, build_sef

__all__ = ["HeadModel", "SAM", "SEF", "build_sam", "build_sef"]

from fgtf.models.heads.cle import CLEModel, build_cle, cle_loss_weights  # noqa: E402

__all__ += ["CLEModel", "build_cle", "cle_loss_weights"]
