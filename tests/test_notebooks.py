"""Execute notebooks/LinearClassifier.ipynb and DomainSimilarity.ipynb headless
(nbclient) on the synthetic data their first cell makes, and check what they print
and draw.

The kernel is this test's own interpreter, through a kernel spec written into a
temporary JUPYTER_PATH, so no user-level `ipykernel install` is needed; the
notebooks' data go to a temporary folder through FGTF_NOTEBOOK_DATA.
"""
import json
import re
import sys
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
KERNEL_NAME = "fgtf-test-python"


def execute_notebook(path, data_dir, kernel_dir, timeout=900):
    """Run every cell of the notebook at `path` in a kernel on this interpreter,
    with its data in `data_dir`; returns the executed notebook (nbformat node).
    `kernel_dir` receives the kernel spec (a JUPYTER_PATH folder)."""
    import os

    import nbformat
    from nbclient import NotebookClient

    spec = Path(kernel_dir) / "kernels" / KERNEL_NAME
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "fgtf test kernel", "language": "python",
        "env": {"FGTF_NOTEBOOK_DATA": str(data_dir), "TF_CPP_MIN_LOG_LEVEL": "3"}}))
    notebook = nbformat.read(path, as_version=4)
    saved = os.environ.get("JUPYTER_PATH")
    os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(kernel_dir), saved]))
    try:
        NotebookClient(notebook, kernel_name=KERNEL_NAME, timeout=timeout,
                       resources={"metadata": {"path": str(Path(path).parent)}}).execute()
    finally:
        if saved is None:
            del os.environ["JUPYTER_PATH"]
        else:
            os.environ["JUPYTER_PATH"] = saved
    return notebook


@pytest.fixture(scope="module")
def run_notebook(tmp_path_factory):
    """`run_notebook(name)` -> (executed notebook, its stdout text); both share one
    data folder, so the random-init weights file is made once."""
    data_dir = tmp_path_factory.mktemp("notebook_data")
    kernel_dir = tmp_path_factory.mktemp("jupyter")

    def run(name):
        notebook = execute_notebook(NOTEBOOKS / name, data_dir, kernel_dir)
        stdout = "".join(output.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                         for output in cell.outputs if output.get("name") == "stdout")
        return notebook, stdout

    return run


@pytest.mark.slow
def test_linear_classifier_notebook(run_notebook):
    notebook, stdout = run_notebook("LinearClassifier.ipynb")
    assert "train features (120, 2048), validation features (80, 2048), 10 classes" in stdout
    for metric in ("top-1 accuracy", "mean per-class accuracy", "precision@5"):
        value = float(re.search(rf"{metric}: ([0-9.]+)", stdout).group(1))
        assert 0.0 <= value <= 1.0, (metric, value)
    assert _png_count(notebook) == 2  # the confusion matrix and the retrieval grid


@pytest.mark.slow
def test_domain_similarity_notebook(run_notebook):
    notebook, stdout = run_notebook("DomainSimilarity.ipynb")
    table = {(source, target): (float(distance), float(sim)) for source, target, distance, sim
             in re.findall(r"^(\S+_source)\s+(\S+_target)\s+([0-9.]+)\s+([0-9.]+)$", stdout, re.MULTILINE)}
    assert len(table) == 6
    for target, near, far in (("birds_target", "birds_source", "planes_source"),
                              ("planes_target", "planes_source", "birds_source")):
        assert table[near, target][0] < table[far, target][0], (target, table)
        assert table[near, target][1] >= table[far, target][1]
    assert "birds_source+planes_source    32 classes,  256 images" in stdout
    assert _png_count(notebook) == 1  # the heatmap


def _png_count(notebook):
    return sum("image/png" in output.get("data", {}) for cell in notebook.cells if cell.cell_type == "code"
               for output in cell.outputs)
