"""The command that writes the synthetic dataset or the transfer world (see
the package docstring for what they hold):

    python -m fgtf.datasets.synthetic --out data/synthetic [--family birds] [--classes 20] ...
    python -m fgtf.datasets.synthetic world --out data/world [--seed 0] ...
"""
import argparse
import inspect
import sys
import time

from fgtf.datasets.synthetic.classes import FAMILIES
from fgtf.datasets.synthetic.generation import generate, generate_world
from fgtf.command_line import HelpFormatter, cli_main, command_parser, program_name
from fgtf.errors import UserError


@cli_main
def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["world"]:
        return _world_main(argv[1:])
    parser = command_parser(
        __name__,
        "Generate the synthetic fine-grained dataset (JPEGs + seed-style train.txt/val.txt/"
                    "classes.txt). Classes share one object shape and differ only in combinations of "
                    "small local parts; pose, scale, background, lighting and JPEG quality vary per image. "
                    "Byte-identical for a seed. `world` as the first argument writes the transfer world instead "
                    "(a long-tailed source pool and one small target per family; see `world --help`).")
    parser.add_argument("--out", default="data/synthetic", help="output folder (default: %(default)s)")
    parser.add_argument("--classes", type=int, default=20, help="number of classes (default: %(default)s)")
    parser.add_argument("--train_per_class", type=int, default=30,
                        help="training images per class (default: %(default)s)")
    parser.add_argument("--val_per_class", type=int, default=30,
                        help="validation images per class (default: %(default)s)")
    parser.add_argument("--image_size", type=int, default=160, help="image side in pixels (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    parser.add_argument("--family", default="birds", choices=FAMILIES,
                        help="object family: birds or fish (side view), planes or butterflies (top view) "
                             "(default: %(default)s)")
    parser.add_argument("--label_noise", type=float, default=0.0,
                        help="fraction of each novel class's training images that show another class "
                             "(web-like noise; default: %(default)s)")
    parser.add_argument("--novel_classes", type=int, default=0,
                        help="the last N classes are novel: they get the label noise (default: %(default)s)")
    parser.add_argument("--num_workers", "--workers", type=int, default=None,
                        help="drawing processes (default: one per CPU; 1 draws in this process)")
    args = parser.parse_args(argv)
    if args.num_workers is not None and args.num_workers < 1:
        raise UserError(f"--num_workers must be at least 1, got {args.num_workers}")
    start = time.perf_counter()
    metadata = generate(args.out, classes=args.classes, train_per_class=args.train_per_class,
                        val_per_class=args.val_per_class, image_size=args.image_size, seed=args.seed,
                        family=args.family, label_noise=args.label_noise, novel_classes=args.novel_classes,
                        num_workers=args.num_workers)
    seconds = time.perf_counter() - start
    count = metadata["num_images"]
    noisy = metadata["num_mislabelled_train_images"]
    print(f"{args.out}: {metadata['arguments']['classes']} {args.family} classes, "
          f"{count['train']} train + {count['val']} val images"
          + (f", {noisy} mislabelled training images in {len(metadata['novel_classes'])} novel classes"
             if metadata["novel_classes"] else "")
          + f" ({seconds:.1f} s)")


# (size knob of generate_world, its help)
_WORLD_KNOBS = (
    ("source_classes", "classes in the source pool, shared out over the families by SOURCE_SHARES"),
    ("max_source_per_class", "training images of the source's most common class"),
    ("min_source_per_class", "training images of the source's rarest class"),
    ("source_val_per_class", "validation images per source class"),
    ("target_classes", "classes of each family's target, none of them in the source"),
    ("target_train_per_class", "training images per target class"),
    ("target_val_per_class", "validation images per target class"),
)


def _world_main(argv):
    parser = argparse.ArgumentParser(
        prog=f"{program_name(__name__)} world", formatter_class=HelpFormatter,
        description="Generate the transfer world: a long-tailed source pool over the families in unequal shares "
                    "(butterflies absent) and one small target per family with classes not in the pool, each a "
                    "seed-style dataset folder (source/, targets/<family>/), described by world.json. "
                    "Byte-identical for a seed.")
    parser.add_argument("--out", default="data/world", help="output folder")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the whole world")
    parser.add_argument("--image_size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--num_workers", "--workers", type=int, default=None,
                        help="drawing processes (default: one per CPU; 1 draws in this process)")
    defaults = inspect.signature(generate_world).parameters
    for knob, help_text in _WORLD_KNOBS:
        parser.add_argument(f"--{knob}", type=int, default=defaults[knob].default, help=help_text)
    args = parser.parse_args(argv)
    if args.num_workers is not None and args.num_workers < 1:
        raise UserError(f"--num_workers must be at least 1, got {args.num_workers}")
    start = time.perf_counter()
    world = generate_world(args.out, seed=args.seed, image_size=args.image_size, num_workers=args.num_workers,
                           **{knob: getattr(args, knob) for knob, _ in _WORLD_KNOBS})
    source = world["source"]
    shares = ", ".join(f"{family} {count}" for family, count in source["family_classes"].items())
    targets = world["targets"]
    print(f"{args.out}: source {source['classes']} classes ({shares}), {source['train_images']} train + "
          f"{source['val_images']} val images; targets {', '.join(t['name'] for t in targets)}, "
          f"{targets[0]['classes']} classes and {targets[0]['train_images']} train + {targets[0]['val_images']} "
          f"val images each ({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
