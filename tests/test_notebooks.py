"""Execute notebooks/LinearClassifier.ipynb and DomainSimilarity.ipynb headless
(nbclient) in their quick mode (FGTF_NOTEBOOK_QUICK=1: a tiny synthetic world
and a short pretraining on its source pool, made by their first cell) and check
what they print and draw, and that no TensorFlow/CUDA log line reaches them;
then DomainSimilarity once more as a user who ran `make demo` would, reading a
demo summary (`../runs/demo/summary.json`) that names the quick world and run.

The kernel is this test's own interpreter, through a kernel spec written into a
temporary JUPYTER_PATH, so no user-level `ipykernel install` is needed; the
notebooks' data go to a temporary folder through FGTF_NOTEBOOK_DATA, shared by
both, so the world and the pretraining are made once. A tiny world's backbone
learns little, so the accuracies are checked for sense, not size.
"""
import json
import math
import re
import sys
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
KERNEL_NAME = "fgtf-test-python"
TARGETS = ("birds", "planes", "fish", "butterflies")  # the world's, one per family
SOURCES = ("pool", "pool.birds", "pool.planes", "pool.fish")  # the pool and its families' parts
# What TensorFlow's C++ core (absl), CUDA and TensorFlow's Python logger write when
# not silenced, e.g. "I0000 00:00:1795362317.763376   16350 cudart_stub.cc:31] Could
# not find cuda drivers ..." or "WARNING:tensorflow:5 out of the last 11 calls ...".
TF_LOG_LINE = re.compile(r"^[IWEF]\d{4} |absl::|cuda|oneDNN|^\w+:tensorflow:", re.MULTILINE | re.IGNORECASE)


def execute_notebook(path, data_dir, kernel_dir, quick=True, cwd=None, timeout=600):
    """Run every cell of the notebook at `path` (in quick mode unless `quick` is
    false) in a kernel on this interpreter, in the folder `cwd` (default: the
    notebook's), with its data in `data_dir`; returns the executed notebook
    (nbformat node). `kernel_dir` receives the kernel spec (a JUPYTER_PATH folder)."""
    import os

    import nbformat
    from nbclient import NotebookClient

    spec = Path(kernel_dir) / "kernels" / KERNEL_NAME
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "fgtf test kernel", "language": "python",
        "env": {"FGTF_NOTEBOOK_DATA": str(data_dir), "FGTF_NOTEBOOK_QUICK": "1" if quick else "0"}}))
    notebook = nbformat.read(path, as_version=4)
    saved = os.environ.get("JUPYTER_PATH")
    os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(kernel_dir), saved]))
    try:
        NotebookClient(notebook, kernel_name=KERNEL_NAME, timeout=timeout,
                       resources={"metadata": {"path": str(cwd or Path(path).parent)}}).execute()
    finally:
        if saved is None:
            del os.environ["JUPYTER_PATH"]
        else:
            os.environ["JUPYTER_PATH"] = saved
    return notebook


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """The notebooks' data folder (FGTF_NOTEBOOK_DATA), shared by every run."""
    return tmp_path_factory.mktemp("notebook_data")


@pytest.fixture(scope="module")
def run_notebook(data_dir, tmp_path_factory):
    """`run_notebook(name, quick=True, cwd=None)` -> (executed notebook, its stdout
    text, its stderr text); a quick run is made once and then reused."""
    kernel_dir = tmp_path_factory.mktemp("jupyter")
    done = {}

    def run(name, quick=True, cwd=None):
        if quick and name in done:
            return done[name]
        notebook = execute_notebook(NOTEBOOKS / name, data_dir, kernel_dir, quick=quick, cwd=cwd)
        streams = {"stdout": "", "stderr": ""}
        for output in _outputs(notebook):
            if output.get("output_type") == "stream":
                streams[output["name"]] += output["text"]
        if quick:
            done[name] = notebook, streams["stdout"], streams["stderr"]
        return notebook, streams["stdout"], streams["stderr"]

    return run


def test_stored_notebooks_have_no_outputs():
    """The committed notebooks carry no outputs (no stale figures, no log lines)."""
    import nbformat

    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        assert not list(_outputs(nbformat.read(path, as_version=4))), path.name


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


def _png_count(notebook):
    return sum("image/png" in output.get("data", {}) for output in _outputs(notebook))
