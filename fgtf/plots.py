"""Every figure fgtf draws, saved as PNG (matplotlib, no display needed)."""
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from fgtf.fileio import atomic_path  # noqa: E402


def confusion_matrix_png(confusion, path, class_names=None, title="Confusion matrix"):
    """Row-normalised confusion matrix `confusion[true, predicted]` (C, C) as a heatmap.

    Ticks sit on whole classes, labelled with `class_names` (else the class
    index; a long name wraps onto a second line, and is cut beyond): every
    class up to `_MAX_TICK_LABELS` classes, every k-th beyond. The figure
    grows with the class count and the names' length, so the matrix keeps
    its room from 2 to hundreds of classes; up to `_MAX_ANNOTATED` classes
    each cell shows its fraction."""
    confusion = np.asarray(confusion, dtype=np.float64)
    rows = confusion.sum(axis=1, keepdims=True)
    normalised = np.divide(confusion, rows, out=np.zeros_like(confusion), where=rows > 0)
    count = len(confusion)
    ticks, labels = class_ticks(count, class_names)
    labels = [wrapped(label, _NAME_LINE, lines=2) for label in labels]
    side = float(np.clip(0.32 * count, 3.0, 14.0))  # inches of the matrix itself
    longest = max(len(line) for label in labels for line in label.split("\n"))
    margin = 0.6 + 0.075 * longest  # tick labels at 7 pt, about 0.075 inch a character
    fig = plt.figure(figsize=(side + margin + 1.3, side + margin + 0.7), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, shrink=0.8, label="fraction of the true class")
    if count <= _MAX_ANNOTATED:
        for (true, predicted), value in np.ndenumerate(normalised):
            if value > 0:
                ax.text(predicted, true, f"{value:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if value > 0.5 else "black")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    ax.set_xticks(ticks, labels, rotation=90 if class_names is not None else 0, fontsize=7)
    ax.set_yticks(ticks, labels, fontsize=7)
    _save(fig, path)


_MAX_TICK_LABELS = 40
_MAX_ANNOTATED = 15
_NAME_LINE = 32  # characters of a line of a class name on an axis


def class_ticks(num_classes, class_names=None, max_labels=_MAX_TICK_LABELS):
    """(tick positions, labels) for a class axis: integer positions, every
    class up to `max_labels` classes and every k-th beyond (at most
    `max_labels` labels), labelled with the class names, else the indices."""
    if class_names is not None and len(class_names) != num_classes:
        raise ValueError(f"{len(class_names)} class names for {num_classes} classes")
    step = -(-num_classes // max_labels)  # ceil
    ticks = np.arange(0, num_classes, step)
    labels = [str(class_names[i]) if class_names is not None else str(i) for i in ticks]
    return ticks, labels


def wrapped(text, width, lines=3):
    """`text` in lines of at most `width` characters, broken after a space,
    `-`, `_` or `.` where it can, at most `lines` of them, the last ending in
    an ellipsis when text was left out."""
    rows = [""]
    for piece in re.findall(r"[^-_. ]*[-_. ]|[^-_. ]+", text):  # each word with the separator after it
        while piece:
            room = width - len(rows[-1])
            if len(piece) <= room:
                rows[-1], piece = rows[-1] + piece, ""
            elif rows[-1] and len(piece) <= width:
                rows.append("")
            else:  # longer than a line: cut it
                rows[-1], piece = rows[-1] + piece[:room], piece[room:]
                rows.append("")
    rows = [row.rstrip() for row in rows if row.strip()] or [""]
    if len(rows) > lines:
        rows = rows[:lines]
        rows[-1] = rows[-1][: width - 1] + "\u2026"
    return "\n".join(rows)


def retrieval_grid_png(query_paths, neighbour_paths, path, query_labels=None, neighbour_labels=None, dpi=100):
    """One row per query: the query image, then its k nearest neighbours.

    query_paths: Q image paths; neighbour_paths: Q lists of k paths. With labels
    (class names or numbers), each title names the image's class, a
    neighbour's in green when it matches the query's, red otherwise; long
    names wrap onto up to three lines. A lower `dpi` keeps the PNG small
    (photos compress poorly), e.g. for a notebook."""
    rows, k = len(query_paths), len(neighbour_paths[0])
    title_lines = 1 if query_labels is None else max(
        wrapped(str(label), _TITLE_WIDTH).count("\n") + 1
        for label in [*query_labels, *(label for row in neighbour_labels or [] for label in row)])
    fig, axes = plt.subplots(rows, k + 1, figsize=(1.8 * (k + 1), (1.8 + 0.16 * title_lines) * rows + 0.4),
                             squeeze=False, layout="constrained")
    for r in range(rows):
        query_title = "query" if query_labels is None else "query:\n" + wrapped(str(query_labels[r]), _TITLE_WIDTH)
        _show_image(axes[r, 0], query_paths[r], query_title, "black", fontsize=7)
        for c in range(k):
            colour = "black"
            title = f"#{c + 1}"
            if query_labels is not None and neighbour_labels is not None:
                title = f"#{c + 1}:\n" + wrapped(str(neighbour_labels[r][c]), _TITLE_WIDTH)
                colour = "green" if neighbour_labels[r][c] == query_labels[r] else "red"
            _show_image(axes[r, c + 1], neighbour_paths[r][c], title, colour, fontsize=7)
    fig.suptitle("nearest neighbours in feature space")
    _save(fig, path, dpi)


_TITLE_WIDTH = 26  # characters of a title line over a 1.8-inch image at 7 pt


def similarity_heatmap_png(values, sources, targets, path, title="Domain similarity", fmt="{:.3f}"):
    """`values[source, target]` (S, T) as an annotated heatmap."""
    values = np.asarray(values, dtype=np.float64)
    fig, ax = plt.subplots(figsize=(1.6 + 1.2 * len(targets), 1.2 + 0.6 * len(sources)))
    image = ax.imshow(values, cmap="viridis", aspect="auto")
    fig.colorbar(image, ax=ax)
    ax.set_xticks(np.arange(len(targets)), targets, rotation=30, ha="right")
    ax.set_yticks(np.arange(len(sources)), sources)
    middle = (np.nanmax(values) + np.nanmin(values)) / 2
    for i in range(len(sources)):
        for j in range(len(targets)):
            ax.text(j, i, fmt.format(values[i, j]), ha="center", va="center",
                    color="black" if values[i, j] > middle else "white", fontsize=9)
    ax.set_xlabel("target")
    ax.set_ylabel("source")
    ax.set_title(title)
    _save(fig, path)


_TRANSFER_SERIES = (("finetune_top1", "fine-tuned", "o"), ("probe_top1", "linear probe", "s"),
                    ("scratch_top1", "from scratch", "x"))


def transfer_vs_similarity_png(rows, path, label="name", title="Transfer accuracy against domain similarity",
                               group=None):
    """The paper's Fig. 5: one point per row (a dict with `similarity`, a
    `label` key naming the point, and any of `finetune_top1`, `probe_top1`,
    `scratch_top1`), top-1 against similarity, one marker per kind of result.
    `group`: a key whose values (e.g. the target) get a colour each, in the
    legend, so the points of one group read as a series."""
    fig, ax = plt.subplots(figsize=(7.2, 5.4) if group else (6.4, 4.8))
    groups = list(dict.fromkeys(row[group] for row in rows)) if group else [None]
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    labelled = False
    for key, name, marker in _TRANSFER_SERIES:
        if not all(key in row for row in rows):
            continue
        for index, value in enumerate(groups):
            members = [row for row in rows if group is None or row[group] == value]
            x = np.array([row["similarity"] for row in members], dtype=np.float64)
            y = np.array([row[key] for row in members], dtype=np.float64)
            legend = name if group is None else f"{name}, {group} {value}"
            style = {"color": colours[index % len(colours)]} if group else {}
            ax.plot(x, y, linestyle="none", marker=marker, markersize=8, label=legend,
                    fillstyle="full" if key != "scratch_top1" else "none", **style)
            if not labelled:  # the first series present names the points
                for xi, yi, row in zip(x, y, members):
                    ax.annotate(str(row[label]), (xi, yi), textcoords="offset points", xytext=(6, 4), fontsize=7)
        labelled = True
    ax.set_xlabel("domain similarity exp(-gamma EMD) of source and target")
    ax.set_ylabel("top-1 on the target's validation split")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7 if group else None)
    ax.set_title(title)
    _save(fig, path)


def eval_history_png(histories, path, chance=None, title="Top-1 during training"):
    """Top-1 against epoch of each run's evaluations during training
    (`histories`: {run name: rows of its eval_history.csv as dicts}), the
    best evaluation of each circled; a dashed line at `chance` when given."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name, rows in histories.items():
        epochs = [float(row["epoch"]) for row in rows]
        top1 = [float(row["top1"]) for row in rows]
        line, = ax.plot(epochs, top1, marker=".", label=name)
        best = int(np.argmax(top1))  # the first of equals, as the best checkpoint is kept
        ax.plot(epochs[best], top1[best], marker="o", markersize=10, fillstyle="none", color=line.get_color())
    if chance is not None:
        ax.axhline(chance, color="grey", linestyle="--", linewidth=1, label="chance")
    ax.set_xlabel("epoch")
    ax.set_ylabel("top-1 (circle: the best, kept in best/)")
    ax.set_ylim(0, None)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    _save(fig, path)


def sample_weights_png(paths_by_class, weights_by_class, path, class_names=None, count=4,
                       title="Sample weights: highest and lowest per class", mislabelled_by_class=None):
    """SimTrans' qualitative figure: one row per class, its `count` highest-
    weighted images (green titles) then its `count` lowest-weighted ones (red).

    paths_by_class: per class, its image paths; weights_by_class: per class,
    the matching weights (same lengths); mislabelled_by_class (optional): per
    class, booleans marking images whose label is known to be wrong."""
    rows = len(paths_by_class)
    decimals = _distinguishing_decimals(weights_by_class)
    fig, axes = plt.subplots(rows, 2 * count, figsize=(1.6 * 2 * count, 2.1 * rows + 0.5), squeeze=False)
    for r, (paths, weights) in enumerate(zip(paths_by_class, weights_by_class)):
        order = list(np.argsort(-np.asarray(weights), kind="stable"))
        highest = order[:count]
        lowest = [i for i in order[-count:] if i not in highest]  # a small class shows each image once
        columns = highest + [None] * (count - len(highest)) + lowest + [None] * (count - len(lowest))
        for ax, index, colour in zip(axes[r], columns, ["green"] * count + ["red"] * count):
            if index is None:
                ax.axis("off")
            else:
                wrong = mislabelled_by_class is not None and mislabelled_by_class[r][index]
                _show_image(ax, paths[index], f"w = {weights[index]:.{decimals}f}" + (" (wrong label)" if wrong else ""),
                            colour)
        name = class_names[r] if class_names is not None else str(r)
        axes[r, 0].text(0.0, 1.3, f"{name}: highest | lowest weights", transform=axes[r, 0].transAxes,
                        ha="left", va="bottom", fontsize=8)
    fig.suptitle(title)
    _save(fig, path)


def attention_overlay_png(image, panels, path, title=None):
    """The input image, then one panel per (title, heatmap) of `panels` with
    the heatmap (H, W) in [0, 1] drawn over the image (jet, half
    transparent), as SAM's attention figures. `image` (H, W, 3) in [0, 1].
    Long lines of the titles wrap; the figure grows to hold them."""
    columns = len(panels) + 1
    panel_titles = ["input"] + ["\n".join(wrapped(line, 38) for line in panel_title.split("\n"))
                                for panel_title, _ in panels]
    title = "\n".join(wrapped(line, 33 * columns, lines=2) for line in title.split("\n")) if title else ""
    title_lines = (title.count("\n") + 1 if title else 0) + max(t.count("\n") + 1 for t in panel_titles)
    fig, axes = plt.subplots(1, columns, figsize=(2.6 * columns, 2.7 + 0.2 * title_lines), squeeze=False,
                             layout="constrained")
    axes[0, 0].imshow(image)
    for ax, (_, heatmap) in zip(axes[0, 1:], panels):
        ax.imshow(image)
        ax.imshow(heatmap, cmap="jet", alpha=0.5, vmin=0.0, vmax=1.0)
    for ax, panel_title in zip(axes[0], panel_titles):
        ax.set_title(panel_title, fontsize=8)
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=9)
    _save(fig, path)


def ranking_png(scores, ranks, metrics, candidates, path, title="Transferability"):
    """`scores[metric, candidate]` (M, C) as a table coloured by `ranks`
    (1 = best, darkest), each cell its score and rank."""
    scores, ranks = np.asarray(scores, dtype=np.float64), np.asarray(ranks)
    fig, ax = plt.subplots(figsize=(2.2 + 1.5 * len(candidates), 1.0 + 0.45 * len(metrics)))
    ax.imshow(-ranks, cmap="Greens", aspect="auto", vmin=-len(candidates) - 1, vmax=-1)
    ax.set_xticks(np.arange(len(candidates)), candidates, rotation=30, ha="right")
    ax.set_yticks(np.arange(len(metrics)), metrics)
    for i in range(len(metrics)):
        for j in range(len(candidates)):
            ax.text(j, i, f"{scores[i, j]:.4g} ({ranks[i, j]})", ha="center", va="center", fontsize=8,
                    color="white" if ranks[i, j] <= (len(candidates) + 1) / 2 else "black")
    ax.set_title(f"{title} (rank 1 = best)")
    _save(fig, path)


def _distinguishing_decimals(values_by_group, least=2, most=6):
    """Decimals (from `least` to `most`) that print every two different values of
    a group differently, so weights close to one another still rank on the figure."""
    for decimals in range(least, most + 1):
        if all(len({f"{value:.{decimals}f}" for value in values}) == len(set(np.asarray(values).tolist()))
               for values in values_by_group):
            return decimals
    return most


def _show_image(ax, image_path, title, colour, fontsize=8):
    from PIL import Image

    with Image.open(image_path) as image:
        ax.imshow(np.asarray(image.convert("RGB")))
    ax.set_title(title, fontsize=fontsize, color=colour)
    ax.axis("off")


def _save(fig, path, dpi=100):
    if fig.get_layout_engine() is None:
        fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    plt.close(fig)
