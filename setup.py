"""fgtf: fine-grained visual classification by transfer learning (TF2 / Keras 3)."""
from setuptools import find_packages, setup

setup(
    name="fgtf",
    version="0.1.0",
    description="Fine-grained visual categorisation by transfer learning in TensorFlow 2 / Keras 3",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["fgtf", "fgtf.*", "tfrecord_tools", "tfrecord_tools.*"]),
    install_requires=[
        "tensorflow>=2.16",
        "keras>=3.13,<3.16",  # the range tests/test_keras_internals.py was run on
        "tensorflow-datasets>=4.9",
        "tensorflow-hub>=0.16",
        "pot>=0.9",
        "numpy",
        "scipy",
        "scikit-learn",
        "threadpoolctl",  # comes with scikit-learn; N-LEEP's PCA runs on one BLAS thread
        "pillow",
        "matplotlib",
        "tqdm",
        "tensorboard",
        "google-crc32c",
    ],
    # jax: the models are also tested on the Keras JAX backend
    # docs: the pages in docs/ as a site (mkdocs serve); the suite builds them
    # export: LiteRT runtime, ONNX export (tf2onnx) and runtime for fgtf.export
    extras_require={
        "export": ["ai-edge-litert>=2.3,<3", "onnx>=1.17,<2", "onnxruntime>=1.20,<2", "tf2onnx>=1.17,<2"],
        "docs": ["mkdocs>=1.6,<2", "mkdocs-material>=9.5,<10", "mkdocstrings[python]>=0.29,<2"],
        "test": ["pytest", "nbclient", "ipykernel", "nbformat", "jax",
                 "mkdocs>=1.6,<2", "mkdocs-material>=9.5,<10", "mkdocstrings[python]>=0.29,<2",
                 "ai-edge-litert>=2.3,<3", "onnx>=1.17,<2", "onnxruntime>=1.20,<2", "tf2onnx>=1.17,<2"],
    },
    entry_points={"console_scripts": ["fgtf = fgtf.cli:main"]},
)
