"""fgtf: fine-grained visual classification by transfer learning (TF2 / Keras 3)."""

__version__ = "0.1.0"
