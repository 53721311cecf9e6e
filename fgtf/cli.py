"""The `fgtf` console script: `fgtf <command> ...` runs `python -m <module> ...`.

    fgtf --help                 every command with its purpose
    fgtf --version
    fgtf extract_features --help

Commands are named as their modules; the former hyphenated names stay
accepted. Nothing here imports TensorFlow, so `fgtf --help` is instant.
"""
import importlib
import sys
import textwrap

from fgtf.command_line import VERBOSE_HELP

# command -> (module whose `main(argv)` implements it, one-line purpose). The
# purposes are written here, not read from the modules, so listing them
# imports nothing.
COMMANDS = {
    "demo": ("fgtf.demo", "the main job: the paper's transfer study in miniature on the synthetic world"),
    "synthetic": ("fgtf.datasets.synthetic", "generate the synthetic fine-grained dataset (JPEGs and split lists)"),
    "convert": ("fgtf.convert", "convert a dataset's raw images to sharded TFRecords with a manifest"),
    "inspect": ("tfrecord_tools.inspect", "summarise a TFRecord folder: shards, records, labels, samples"),
    "verify": ("tfrecord_tools.verify", "check every shard of a TFRecord folder against its manifest"),
    "merge": ("tfrecord_tools.merge", "merge conversion outputs written by shard range on several machines"),
    "checkpoints": ("fgtf.checkpoints", "convert a TF-Slim checkpoint or run to a Keras .weights.h5"),
    "train": ("fgtf.train", "train a backbone (optionally with an FGVC head) under tf.distribute"),
    "recipes": ("fgtf.recipes", "list the published experiments' recipes, or show one resolved"),
    "evaluate": ("fgtf.evaluate", "evaluate a run's checkpoints: top-1/top-5, per-class, confusion"),
    "extract_features": ("fgtf.extract_features", "extract a network's pooled features of a dataset's images"),
    "linear": ("fgtf.transfer.linear", "linear probe (logistic regression) and kNN on extracted features"),
    "domain_similarity": ("fgtf.transfer.domain_similarity", "EMD domain similarity between feature sets"),
    "select_source": ("fgtf.transfer.select_source", "choose the source classes most similar to a target"),
    "rank": ("fgtf.transfer.rank", "rank backbones or sources for a target by transferability scores"),
    "visualize_attention": ("fgtf.visualize_attention", "overlay attention and class activation maps on images"),
    "simtrans": ("fgtf.simtrans", "SimTrans weak-shot learning: pretrain, simnet, weights, train, eval"),
    "export": ("fgtf.export", "export a model: SavedModel (TF-Hub), LiteRT, ONNX or .keras"),
}
# former names -> command
ALIASES = {
    "merge-shards": "merge",
    "extract-features": "extract_features",
    "domain-similarity": "domain_similarity",
    "select-source": "select_source",
    "visualize-attention": "visualize_attention",
}


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage(), file=sys.stdout if argv else sys.stderr)
        sys.exit(0 if argv else 2)
    if argv[0] == "--version":
        import fgtf

        print(f"fgtf {fgtf.__version__}")
        sys.exit(0)
    command, rest = ALIASES.get(argv[0], argv[0]), argv[1:]
    if command not in COMMANDS:
        print(f"fgtf: error: unknown command {argv[0]!r}\n{usage()}", file=sys.stderr)
        sys.exit(2)
    module_name = COMMANDS[command][0]
    try:
        module = importlib.import_module(module_name)
        if not hasattr(module, "main"):  # a package whose command is its __main__ module
            module = importlib.import_module(f"{module_name}.__main__")
    except ModuleNotFoundError as error:
        missing = error.name or str(error)
        what = (f"its module {module_name} is not part of this installation" if missing == module_name or module_name.startswith(missing + ".")
                else f"it needs the Python package {missing!r}, which is not installed")
        print(f"fgtf: error: cannot run `fgtf {command}`: {what}", file=sys.stderr)
        sys.exit(2)
    # Commands name themselves (usage lines, errors) by sys.argv[0]: see fgtf.command_line.program_name.
    invoked_as, sys.argv = sys.argv, [f"fgtf {command}"] + rest
    try:
        module.main(rest)
    finally:  # for callers in the same process (tests, notebooks)
        sys.argv = invoked_as


def usage():
    """The `fgtf --help` text: each command with its purpose."""
    width = max(map(len, COMMANDS)) + 2
    lines = ["usage: fgtf <command> [options]   (fgtf <command> --help for its options;",
             "       the same as python -m <module> [options])", "       fgtf --version", "", "commands:"]
    lines += [f"  {name:<{width}}{purpose}" for name, (_, purpose) in COMMANDS.items()]
    former = ", ".join(f"{old} ({new})" for old, new in ALIASES.items())
    lines += [""] + textwrap.wrap(VERBOSE_HELP, 100) + textwrap.wrap(f"former names still accepted: {former}", 100)
    return "\n".join(lines)
