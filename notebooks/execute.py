"""Run the notebooks on `make demo`'s world and pretrained run and store them
with their outputs (`make notebooks`).

    python notebooks/execute.py [--data_dir notebooks/_data] [--timeout 1800] [NOTEBOOK ...]

Each notebook (default: both) runs top to bottom headless (nbclient) in its
own folder, in a kernel on this interpreter, in full mode (not
FGTF_NOTEBOOK_QUICK): its first cell reads `runs/demo/summary.json` and takes
the demo's world and source run as they are; features and figures go to
`--data_dir` (FGTF_NOTEBOOK_DATA, default the notebooks' own `_data/`). The
file is written back only when every cell ran and no output holds an error, a
stderr stream or a TensorFlow log line; no timing metadata is recorded, so a
rerun on the same demo run changes nothing that the run did not change.

tests/test_notebooks.py runs the notebooks through `execute_notebook` in quick
mode without writing them, and checks the stored outputs with `problems`.
"""
import argparse
import json
import os
import re
import sys
import tempfile
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parent
NOTEBOOK_NAMES = ("LinearClassifier.ipynb", "DomainSimilarity.ipynb")
DEMO_SUMMARY = NOTEBOOKS.parent / "runs" / "demo" / "summary.json"  # where the notebooks' first cell looks
KERNEL_NAME = "fgtf-notebook-python"
# What TensorFlow's C++ core (absl), CUDA and TensorFlow's Python logger write when
# not silenced, e.g. "I0000 00:00:1795362317.763376   16350 cudart_stub.cc:31] Could
# not find cuda drivers ..." or "WARNING:tensorflow:5 out of the last 11 calls ...".
TF_LOG_LINE = re.compile(r"^[IWEF]\d{4} |absl::|cuda|oneDNN|^\w+:tensorflow:", re.MULTILINE | re.IGNORECASE)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python notebooks/execute.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", metavar="NOTEBOOK", default=list(NOTEBOOK_NAMES),
                        help="notebook files or names in notebooks/ (default: both)")
    parser.add_argument("--data_dir", help="the notebooks' data folder (FGTF_NOTEBOOK_DATA; default notebooks/_data)")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds one cell may run")
    args = parser.parse_args(argv)
    from nbclient.exceptions import CellExecutionError

    if not DEMO_SUMMARY.is_file():
        parser.exit(2, f"{parser.prog}: error: no {DEMO_SUMMARY}: run `make demo` first, the notebooks use its "
                       "world and pretrained run\n")
    demo = json.loads(DEMO_SUMMARY.read_text())
    if not Path(demo["source"]["run_dir"]).is_dir():
        parser.exit(2, f"{parser.prog}: error: the demo's source run {demo['source']['run_dir']} is gone: run "
                       "`make demo` again\n")
    print(f"demo run: world seed {demo['seed']}, source run {demo['source']['run_dir']}")
    for name in args.notebooks:
        path = Path(name) if Path(name).is_file() else NOTEBOOKS / name
        if not path.is_file():
            parser.exit(2, f"{parser.prog}: error: no notebook {name}\n")
        try:
            notebook = execute_notebook(path, quick=False, data_dir=args.data_dir, timeout=args.timeout)
        except CellExecutionError as error:
            parser.exit(1, f"{parser.prog}: error: {path.name} not stored, a cell failed: "
                           f"{error.ename}: {error.evalue}\n")
        found = problems(notebook)
        if found:
            parser.exit(1, f"{parser.prog}: error: {path.name} not stored, its outputs hold "
                           + "; ".join(found) + "\n")
        store(notebook, path)
        print(f"wrote {path}")


def execute_notebook(path, *, quick, data_dir=None, cwd=None, timeout=600):
    """Run every cell of the notebook at `path` (in quick mode when `quick`) in
    a kernel on this interpreter, in the folder `cwd` (default: the notebook's),
    with its data in `data_dir` (default: the notebook's own); returns the
    executed notebook (nbformat node), with no timing metadata.

    The kernel spec goes to a temporary JUPYTER_PATH folder, so no
    user-level `ipykernel install` is needed. A failing cell raises nbclient's
    CellExecutionError."""
    import nbformat
    from nbclient import NotebookClient

    env = {"FGTF_NOTEBOOK_QUICK": "1" if quick else "0"}
    if data_dir is not None:
        env["FGTF_NOTEBOOK_DATA"] = str(Path(data_dir).resolve())
    notebook = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory() as kernel_dir:
        spec = Path(kernel_dir) / "kernels" / KERNEL_NAME
        spec.mkdir(parents=True)
        (spec / "kernel.json").write_text(json.dumps({
            "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}",
                     "--IPKernelApp.log_level=ERROR"],  # not its warning that local TCP is unencrypted
            "display_name": "fgtf notebook kernel", "language": "python", "env": env}))
        saved = os.environ.get("JUPYTER_PATH")
        os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [kernel_dir, saved]))
        try:
            NotebookClient(notebook, kernel_name=KERNEL_NAME, timeout=timeout, record_timing=False,
                           resources={"metadata": {"path": str(cwd or Path(path).parent)}}).execute()
        finally:
            if saved is None:
                del os.environ["JUPYTER_PATH"]
            else:
                os.environ["JUPYTER_PATH"] = saved
    return notebook


def problems(notebook):
    """What in the notebook's outputs a reader should not see: a list of
    phrases (empty when clean)."""
    found = []
    for index, cell in enumerate(notebook.cells):
        for output in cell.get("outputs", ()):
            kind = output.get("output_type")
            if kind == "error":
                found.append(f"an error in cell {index} ({output.get('ename')})")
            elif kind == "stream" and output.get("name") == "stderr":
                found.append(f"stderr text in cell {index}: {output.get('text', '')[:200]!r}")
            texts = [output.get("text", "")] + [value for key, value in output.get("data", {}).items()
                                                 if key.startswith("text/")]
            for text in texts:
                text = "".join(text) if isinstance(text, list) else text
                line = TF_LOG_LINE.search(text)
                if line:
                    found.append(f"a TensorFlow log line in cell {index} ({line.group(0)!r})")
    return found


def store(notebook, path):
    """Write the notebook atomically, as nbformat writes it."""
    import nbformat

    from fgtf.fileio import write_text

    text = nbformat.writes(notebook)
    write_text(path, text if text.endswith("\n") else text + "\n")


if __name__ == "__main__":
    main()
