"""Generic, dataset-agnostic TFRecord tools: Example codec, image validation,
parallel atomic sharded writer with manifest, reader, inspect and verify CLIs.

This package never imports fgtf.
"""
