"""The `fgtf` console script: `fgtf <command> ...` runs `python -m <module> ...`."""
import importlib
import sys

# command -> module whose `main(argv)` implements it
COMMANDS = {
    "synthetic": "fgtf.datasets.synthetic",
    "convert": "fgtf.convert",
    "inspect": "tfrecord_tools.inspect",
    "verify": "tfrecord_tools.verify",
    "merge-shards": "tfrecord_tools.merge",
    "checkpoints": "fgtf.checkpoints",
    "train": "fgtf.train",
    "evaluate": "fgtf.evaluate",
    "extract-features": "fgtf.extract_features",
    "linear": "fgtf.transfer.linear",
    "domain-similarity": "fgtf.transfer.domain_similarity",
    "visualize-attention": "fgtf.visualize_attention",
    "simtrans": "fgtf.simtrans",
    "export": "fgtf.export",
    "select_source": "fgtf.transfer.select_source",
}


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        sys.exit(0 if argv else 2)
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"fgtf: unknown command {command!r}.\n{_usage()}", file=sys.stderr)
        sys.exit(2)
    module = importlib.import_module(COMMANDS[command])
    sys.argv = [f"fgtf {command}"] + rest
    module.main(rest)


def _usage():
    lines = ["usage: fgtf <command> [options]   (fgtf <command> --help for its options)", "", "commands:"]
    lines += [f"  {name:<20} python -m {module}" for name, module in COMMANDS.items()]
    return "\n".join(lines)
