"""Classification metrics, shared by every command that scores predictions:
`fgtf.evaluate` and evaluation during training (from a network's logits),
`fgtf.transfer.linear` (from a probe's or kNN's predicted labels).

    report = classification_report(labels, predictions)          # accuracy, per class, confusion
    metrics = classification_metrics(logits, labels, num_classes)  # top-1/5, loss too
"""
import numpy as np
from numpy.typing import ArrayLike


def classification_metrics(logits: ArrayLike, labels: ArrayLike, num_classes: int) -> dict:
    """top1, top5, mean per-class accuracy, mean cross-entropy loss, per-class
    accuracies and the confusion matrix [true, predicted] of logits (N, C)."""
    logits = np.asarray(logits, np.float64)
    labels = np.asarray(labels, np.int64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    k = min(5, logits.shape[1])
    top_k = np.argpartition(-logits, k - 1, axis=1)[:, :k]
    report = classification_report(labels, logits.argmax(axis=1), num_classes)
    return {"top1": report["accuracy"], "top5": float(np.mean((top_k == labels[:, None]).any(axis=1))),
            "mean_per_class_accuracy": report["mean_per_class_accuracy"],
            "loss": float(-log_probs[np.arange(len(labels)), labels].mean()),
            "per_class_accuracy": [None if np.isnan(a) else float(a) for a in report["per_class_accuracy"]],
            "confusion_matrix": report["confusion_matrix"]}


def classification_report(labels: ArrayLike, predictions: ArrayLike, num_classes: int | None = None) -> dict:
    """Metrics of integer `predictions` against `labels` (both (N,))."""
    labels = np.asarray(labels, dtype=np.int64)
    predictions = np.asarray(predictions, dtype=np.int64)
    num_classes = num_classes or int(max(labels.max(), predictions.max())) + 1
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (labels, predictions), 1)
    per_class_total = confusion.sum(axis=1)
    present = per_class_total > 0
    per_class = np.divide(np.diag(confusion), per_class_total, out=np.full(num_classes, np.nan),
                          where=present)
    return {
        "accuracy": float(np.mean(labels == predictions)),
        "mean_per_class_accuracy": float(np.nanmean(per_class)),
        "per_class_accuracy": per_class,
        "confusion_matrix": confusion,
        "predictions": predictions,
    }
