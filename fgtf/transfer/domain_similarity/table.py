"""The EMD domain similarity of datasets whose features are stored (one
model's features folder, `fgtf.transfer.feature_store`): the table of every
source x target pair, its text form and its files (CSV, JSON, heatmap PNG)."""
import os

import numpy as np

from fgtf.transfer.domain_similarity import class_features, combine, emd, similarity
from fgtf.transfer.feature_store import load_features


def similarity_table(features_dir: str, sources: list[str], targets: list[str], *, min_images: int = 200,
                     gamma: float = 0.01, split: str = "train") -> list[dict]:
    """EMD and similarity for every (source, target) pair of dataset names whose
    features are stored in `features_dir`. Returns a list of row dicts, each
    with the settings that produced it (gamma, min_images, split, features)."""
    settings = {"gamma": gamma, "min_images": min_images, "split": split,
                "features": os.path.abspath(features_dir)}
    domains = {}

    def domain(name):
        if name not in domains:
            parts = [class_features(*load_features(features_dir, part, split)[:2]) for part in name.split("+")]
            domains[name] = combine(*parts)
        return domains[name]

    rows = []
    for source in sources:
        for target in targets:
            distance = emd(*domain(source), *domain(target), min_images=min_images)
            rows.append({"source": source, "target": target, "emd": distance,
                         "similarity": float(similarity(distance, gamma)), **settings})
    return rows


def format_table(rows: list[dict]) -> str:
    lines = [f"{'source':<24} {'target':<20} {'EMD':>10} {'similarity':>11}"]
    lines += [f"{r['source']:<24} {r['target']:<20} {r['emd']:>10.4f} {r['similarity']:>11.4f}" for r in rows]
    return "\n".join(lines)


_CSV_COLUMNS = ("source", "target", "emd", "similarity", "gamma", "min_images", "split", "features")


def write_table(rows: list[dict], out_dir: str, sources: list[str], targets: list[str]) -> None:
    """domain_similarity.csv, .json and a heatmap .png of the similarities;
    rows keep the settings `similarity_table` put in them."""
    import csv
    import io

    from fgtf.fileio import write_json, write_text
    from fgtf.plots import similarity_heatmap_png

    base = os.path.join(out_dir, "domain_similarity")
    text = io.StringIO()
    table_writer = csv.DictWriter(text, [c for c in _CSV_COLUMNS if c in rows[0]], extrasaction="ignore",
                                  lineterminator="\n")
    table_writer.writeheader()
    table_writer.writerows({**r, "emd": f"{r['emd']:.6f}", "similarity": f"{r['similarity']:.6f}"} for r in rows)
    write_text(base + ".csv", text.getvalue())
    write_json(base + ".json", rows)
    table = np.array([[r["similarity"] for r in rows[i * len(targets):(i + 1) * len(targets)]]
                      for i in range(len(sources))])
    similarity_heatmap_png(table, sources, targets, base + ".png", title="Domain similarity exp(-γ·EMD)")
