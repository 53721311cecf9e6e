"""The `fgtf` console script: `fgtf <command> ...` runs `python -m <module> ...`.

    fgtf --help                 every command with its purpose
    fgtf --version
    fgtf extract_features --help

Commands are named as their modules; the former hyphenated names stay
accepted. Nothing here imports TensorFlow, so `fgtf --help` is instant.
"""
import argparse
import contextlib
import importlib
import sys
import textwrap

from tfrecord_tools.cli import VERBOSE_HELP, HelpFormatter, UserError

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
    invoked_as, sys.argv = sys.argv, [f"fgtf {command}"] + rest
    try:
        with program_name(module_name, f"fgtf {command}"):
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


@contextlib.contextmanager
def program_name(module_name, name):
    """Within this block, an argument parser that calls itself `python -m
    <module_name>` is named `name` instead, so usage lines and errors show
    the command as the user typed it (`fgtf convert`); its subcommands
    (`fgtf checkpoints convert`) follow, since argparse derives their names
    from the parent's."""
    original = argparse.ArgumentParser.__init__
    own_name = f"python -m {module_name}"

    def renaming_init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        if self.prog == own_name:
            self.prog = name

    argparse.ArgumentParser.__init__ = renaming_init
    try:
        yield
    finally:
        argparse.ArgumentParser.__init__ = original


class DocHelpFormatter(argparse.RawDescriptionHelpFormatter, HelpFormatter):
    """`--help` with the module docstring as written (its examples keep their
    lines) and each flag's default once, as `tfrecord_tools.cli.HelpFormatter`."""


def model_name(text):
    """argparse type of `--model`: a name the registry knows, plugins
    included (see `fgtf.models`); anything else is refused where it is parsed."""
    from fgtf.models import list_models

    try:
        known = list_models()
    except UserError as error:  # a plugin failed to load: argparse shows ValueErrors as "invalid value"
        raise argparse.ArgumentTypeError(str(error)) from None
    if text not in known:
        raise argparse.ArgumentTypeError(f"unknown model {text!r}; known models: {', '.join(known)}")
    return text
