"""SimTrans weak-shot learning ("Weak-shot Fine-grained Classification via
Similarity Transfer", Chen et al., NeurIPS 2021), an application of its own
on fgtf's registry backbones, preprocessing and checkpoint loading:

    __main__.py     the command: python -m fgtf.simtrans pretrain | simnet | weights | train | eval
    steps.py        the five steps as library functions over one run folder
    run_folder.py   the run folder's files, and which step outputs are current
    networks.py     the run's backbone, classifier and SimNet, built and loaded
    model.py        the Keras pieces: SimNet, its head and discriminator, the
                    weak-shot classifier, the sample weights and losses
"""
from fgtf.simtrans.steps import (ClassifierOptions, PretrainOptions, SimNetOptions, class_grouped_batches,
                                 compute_weights, evaluate, pretrain, train_classifier, train_simnet)

__all__ = ["ClassifierOptions", "PretrainOptions", "SimNetOptions", "class_grouped_batches", "compute_weights",
           "evaluate", "pretrain", "train_classifier", "train_simnet"]
