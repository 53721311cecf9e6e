"""The notebooks: notebooks/LinearClassifier.ipynb and DomainSimilarity.ipynb
are stored with the outputs of `make notebooks` on `make demo`'s world and
source run; check those outputs (clean, and the figures docs/transfer.md states), then
execute the notebooks headless (nbclient, through notebooks/execute.py) in
their quick mode (FGTF_NOTEBOOK_QUICK=1: a tiny synthetic world and a short
pretraining on its source pool, made by their first cell) and check what they
print and draw, and that no TensorFlow/CUDA log line reaches them; then
DomainSimilarity once more as a user who ran `make demo` would, reading a demo
summary (`../runs/demo/summary.json`) that names the quick world and run.

The notebooks' data go to a temporary folder through FGTF_NOTEBOOK_DATA,
shared by every run, so the quick world and pretraining are made once; the
stored files are never rewritten. A tiny world's backbone learns little, so
the quick accuracies are checked for sense, not size.
"""
import importlib.util
import json
import math
import re
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS_PAGE = NOTEBOOKS.parent / "docs" / "transfer.md"  # its paragraph on the notebooks
TARGETS = ("birds", "planes", "fish", "butterflies")  # the world's, one per family
SOURCES = ("pool", "pool.birds", "pool.planes", "pool.fish")  # the pool and its families' parts


def _load_execute():
    spec = importlib.util.spec_from_file_location("notebooks_execute", NOTEBOOKS / "execute.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


execute = _load_execute()
TF_LOG_LINE = execute.TF_LOG_LINE


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """The notebooks' data folder (FGTF_NOTEBOOK_DATA), shared by every run."""
    return tmp_path_factory.mktemp("notebook_data")


@pytest.fixture(scope="module")
def run_notebook(data_dir):
    """`run_notebook(name, quick=True, cwd=None)` -> (executed notebook, its stdout
    text, its stderr text); a quick run is made once and then reused. The stored
    file is left as it was."""
    done = {}

    def run(name, quick=True, cwd=None):
        if quick and name in done:
            return done[name]
        stored = (NOTEBOOKS / name).read_bytes()
        notebook = execute.execute_notebook(NOTEBOOKS / name, quick=quick, data_dir=data_dir, cwd=cwd)
        assert (NOTEBOOKS / name).read_bytes() == stored
        streams = {"stdout": "", "stderr": ""}
        for output in _outputs(notebook):
            if output.get("output_type") == "stream":
                streams[output["name"]] += output["text"]
        if quick:
            done[name] = notebook, streams["stdout"], streams["stderr"]
        return notebook, streams["stdout"], streams["stderr"]

    return run


def test_stored_notebooks_hold_a_clean_full_run():
    """The committed notebooks carry the outputs of `make notebooks`: every code
    cell ran once, in order, in full mode on the demo's backbone; their figures
    are there, no output holds an error, stderr text or a TensorFlow log line,
    and the files stay small enough for a repository page."""
    import nbformat

    for name in execute.NOTEBOOK_NAMES:
        path = NOTEBOOKS / name
        notebook = nbformat.read(path, as_version=4)
        code = [cell for cell in notebook.cells if cell.cell_type == "code"]
        assert [cell.execution_count for cell in code] == list(range(1, len(code) + 1)), name
        assert execute.problems(notebook) == [], name
        assert _png_count(notebook) == 2, name
        assert not any("execution" in cell.metadata for cell in code), name  # no timestamps stored
        assert path.stat().st_size < 2_000_000, name
        assert re.search(r"^backbone: small_cnn at 64 px, \.\./runs/demo/seed\d+/source step [1-9]\d*, pretrained "
                         r"on the source pool \S+ \(250 classes, \d+ training images\)$", _stdout(notebook),
                         re.MULTILINE), name


def test_readme_and_notebooks_state_the_stored_figures():
    """The notebook paragraph of docs/transfer.md and the notebooks' own text quote the figures
    the stored outputs print (the probe on birds, the EMD table, the demo's
    accuracies), and the world seed they were made on."""
    import nbformat

    notebooks = {name: nbformat.read(NOTEBOOKS / name, as_version=4) for name in execute.NOTEBOOK_NAMES}
    linear, domain = (_stdout(notebooks[name]) for name in execute.NOTEBOOK_NAMES)
    seed = re.search(r"\.\./runs/demo/seed(\d+)/source", linear).group(1)
    top1 = float(re.search(r"^top-1 accuracy: ([0-9.]+)", linear, re.MULTILINE).group(1))
    per_class = float(re.search(r"^mean per-class accuracy: ([0-9.]+)", linear, re.MULTILINE).group(1))
    precision = float(re.search(r"^precision@5: ([0-9.]+)", linear, re.MULTILINE).group(1))
    in_grid = re.search(r"^neighbours of the query's class in the grid: (\d+) of 20", linear, re.MULTILINE).group(1)
    emd = {(source, target): float(distance) for source, target, distance
           in re.findall(r"^(pool\S*)\s+(\S+)\s+([0-9.]+)\s+[0-9.]+$", domain, re.MULTILINE)}
    accuracies = {name: dict(zip(("similarity", "probe", "finetune", "scratch"), map(float, values))) for name, *values
                  in re.findall(r"^(\w+)\s+([0-9.]+)\s+([0-9.]+)\s+([0-9.]+)\s+([0-9.]+)$", domain, re.MULTILINE)}
    assert set(emd) == {(s, t) for s in SOURCES for t in TARGETS} and set(accuracies) == set(TARGETS)

    def ranking(key, digits=3):
        return ", ".join(f"{name} {values[key]:.{digits}f}"
                         for name, values in sorted(accuracies.items(), key=lambda item: -item[1][key]))

    in_pool = [t for t in TARGETS if f"pool.{t}" in SOURCES]
    others = [emd[f"pool.{f}", t] for f in in_pool for t in in_pool if f != t]
    nearest = min(SOURCES[1:], key=lambda source: emd[source, "butterflies"])
    probe = {name: f"{values['probe']:.3f}" for name, values in accuracies.items()}
    linear_figures = [f"world seed {seed}", f"probe top-1 **{top1:.3f}**", f"mean per-class {per_class:.3f}",
                      f"precision@5 {precision:.3f}", f"{in_grid} of the grid's 20 neighbours"]
    domain_figures = [", ".join(f"{t} {emd[f'pool.{t}', t]:.2f}" for t in in_pool),
                      f"{min(others):.1f}–{max(others):.1f}", f"nearest `{nearest}` ({emd[nearest, 'butterflies']:.2f})",
                      ranking("similarity", 4), ranking("probe"), "fine-tuning " + ranking("finetune")]
    readme = NOTEBOOKS_PAGE.read_text(encoding="utf-8")
    readme = readme[readme.index("The notebooks `notebooks/LinearClassifier.ipynb`"):]
    readme = " ".join(readme[:readme.index("\n## ")].split())  # that paragraph, its lines joined
    for figure in linear_figures + domain_figures:
        assert figure in readme, figure
    for name, figures in zip(execute.NOTEBOOK_NAMES, (linear_figures + [
            f"fine-tuning ({accuracies['birds']['finetune']:.3f})", f"alone ({accuracies['birds']['scratch']:.3f})",
            f"their probes are {probe['planes']}, {probe['fish']} and {probe['butterflies']}"], domain_figures)):
        text = " ".join(" ".join(cell.source for cell in notebooks[name].cells if cell.cell_type == "markdown").split())
        for figure in figures:
            assert figure in text, (name, figure)


def test_execute_stores_only_clean_outputs(tmp_path, monkeypatch, capsys):
    """`problems` names an error, stderr text and a TensorFlow log line (and
    nothing in clean outputs); notebooks/execute.py refuses without a demo."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook, new_output

    clean = new_notebook(cells=[new_code_cell(outputs=[new_output("stream", name="stdout", text="top-1 0.5\n")])])
    assert execute.problems(clean) == []
    noisy = new_notebook(cells=[new_code_cell(outputs=[
        new_output("error", ename="ValueError", evalue="no", traceback=[]),
        new_output("stream", name="stderr", text="careful\n"),
        new_output("stream", name="stdout", text="WARNING:tensorflow:5 out of the last 11 calls\n")])])
    found = execute.problems(nbformat.from_dict(noisy))
    assert len(found) == 3 and "ValueError" in found[0] and "stderr" in found[1] and "TensorFlow" in found[2], found

    monkeypatch.setattr(execute, "DEMO_SUMMARY", tmp_path / "runs" / "demo" / "summary.json")
    with pytest.raises(SystemExit) as exit_info:
        execute.main([])
    assert exit_info.value.code == 2 and "run `make demo` first" in capsys.readouterr().err


@pytest.mark.slow
def test_linear_classifier_notebook(run_notebook):
    notebook, stdout, stderr = run_notebook("LinearClassifier.ipynb")
    assert not TF_LOG_LINE.search(stdout + stderr), stdout + stderr
    assert re.search(r"^backbone: small_cnn at 32 px, \S+source_run step [1-9]\d*, pretrained on the source pool "
                     r"\S+ \(24 classes, \d+ training images\)$", stdout, re.MULTILINE), stdout
    assert "targets: birds (birds), planes (planes), fish (fish), butterflies (butterflies)" in stdout
    assert re.search(r"^train features \(40, \d+\), validation features \(40, \d+\), 5 classes, e\.g\.$\n"
                     r"^  0: birds\.", stdout, re.MULTILINE), stdout
    top1, chance = map(float, re.search(r"top-1 accuracy: ([0-9.]+) \(chance ([0-9.]+)\)", stdout).groups())
    assert chance == 0.2 and 0.0 <= top1 <= 1.0 and (top1 * 40).is_integer()  # 40 validation images
    for metric in ("mean per-class accuracy", "precision@5"):
        value = float(re.search(rf"{metric}: ([0-9.]+)", stdout).group(1))
        assert 0.0 <= value <= 1.0, (metric, value)
    shown = int(re.search(r"neighbours of the query's class in the grid: (\d+) of 20", stdout).group(1))
    assert 0 <= shown <= 20
    assert _png_count(notebook) == 2  # the confusion matrix and the retrieval grid


@pytest.mark.slow
def test_domain_similarity_notebook(run_notebook):
    notebook, stdout, stderr = run_notebook("DomainSimilarity.ipynb")
    assert not TF_LOG_LINE.search(stdout + stderr), stdout + stderr
    domains = {name: (int(classes), int(images)) for name, classes, images
               in re.findall(r"^(\S+)\s+(\d+) classes,\s+(\d+) images, class features", stdout, re.MULTILINE)}
    assert set(domains) == {*SOURCES, *TARGETS}
    parts = [domains[s] for s in SOURCES[1:]]
    assert domains["pool"] == (24, sum(images for _, images in parts)) == (sum(c for c, _ in parts), domains["pool"][1])
    assert all(domains[t] == (5, 40) for t in TARGETS)

    table = {(source, target): (float(distance), float(sim)) for source, target, distance, sim
             in re.findall(r"^(pool\S*)\s+(\S+)\s+([0-9.]+)\s+([0-9.]+)$", stdout, re.MULTILINE)}
    assert set(table) == {(s, t) for s in SOURCES for t in TARGETS}
    for distance, sim in table.values():
        assert distance > 0 and math.isclose(sim, math.exp(-0.01 * distance), abs_tol=1e-4)
    for target in TARGETS:
        nearest = re.search(rf"most similar part of the pool for {target}: (\S+)", stdout).group(1)
        assert nearest == min(SOURCES[1:], key=lambda s: table[s, target][0])
        if f"pool.{target}" in SOURCES:  # even a briefly pretrained backbone tells the families apart
            assert nearest == f"pool.{target}", table

    points = dict(re.findall(r"^(\w+)\s+[0-9.]+\s+([0-9.]+)$", stdout, re.MULTILINE))  # target, similarity, probe
    assert set(points) == set(TARGETS) and all(0.0 <= float(p) <= 1.0 for p in points.values())
    assert _png_count(notebook) == 2  # the heatmap and the similarity-vs-accuracy plot


@pytest.mark.slow
def test_domain_similarity_notebook_uses_a_finished_demo(run_notebook, data_dir, tmp_path):
    """With `../runs/demo/summary.json` beside the notebook's folder, the first
    cell takes the demo's world and source run (here the quick ones) and the
    plot the demo's three accuracies per target, as the summary gives them."""
    from fgtf.study import Recipe

    run_notebook("LinearClassifier.ipynb")  # makes the quick world and source run when not yet there
    world_dir = data_dir / "quick" / "world"
    world = json.loads((world_dir / "world.json").read_text())
    targets = [{"name": t["name"], "family": t["family"], "dataset_dir": str(world_dir / t["dataset_dir"]),
                "probe_top1": 0.5 + i / 10, "finetune_top1": 0.55 + i / 10, "scratch_top1": 0.1 + i / 100}
               for i, t in enumerate(world["targets"])]
    summary = {"seed": 0, "recipe": Recipe(image_size=32).as_dict(),  # the quick backbone's size; the rest trains
               "source": {**world["source"], "dataset_dir": str(world_dir / "source"),
                          "run_dir": str(data_dir / "quick" / "study" / "source_run")},
               "targets": targets}
    (tmp_path / "runs" / "demo").mkdir(parents=True)
    (tmp_path / "runs" / "demo" / "summary.json").write_text(json.dumps(summary))
    (tmp_path / "notebooks").mkdir()

    notebook, stdout, stderr = run_notebook("DomainSimilarity.ipynb", quick=False, cwd=tmp_path / "notebooks")
    assert not TF_LOG_LINE.search(stdout + stderr), stdout + stderr
    assert f"backbone: small_cnn at 32 px, {data_dir / 'quick' / 'study' / 'source_run'} step" in stdout
    assert "training steps" not in stdout and "resumed" not in stdout  # the demo's run is used as it is
    assert re.search(r"^target\s+similarity\s+probe\s+finetune\s+scratch$", stdout, re.MULTILINE), stdout
    printed = {name: tuple(map(float, values)) for name, *values in re.findall(
        r"^(\w+)\s+[0-9.]+\s+([0-9.]+)\s+([0-9.]+)\s+([0-9.]+)$", stdout, re.MULTILINE)}
    assert printed == {t["name"]: (round(t["probe_top1"], 3), round(t["finetune_top1"], 3),
                                   round(t["scratch_top1"], 3)) for t in targets}
    assert (data_dir / "full" / "figures" / "transfer_vs_similarity.png").is_file()
    assert _png_count(notebook) == 2


def _outputs(notebook):
    return (output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs)


def _stdout(notebook):
    return "".join(output["text"] for output in _outputs(notebook)
                   if output.get("output_type") == "stream" and output["name"] == "stdout")


def _png_count(notebook):
    return sum("image/png" in output.get("data", {}) for output in _outputs(notebook))
