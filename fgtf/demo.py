"""The main job, on a CPU in minutes: the paper's transfer study in miniature
on the synthetic world.

    python -m fgtf.demo [--seed 0] [--data_dir data] [--run_dir runs/demo]

1. generates the world (`fgtf.datasets.synthetic world`): a long-tailed
   source pool over several families in unequal shares (one family absent)
   and one small target dataset per family, its classes new;
2. converts every dataset to TFRecords;
3. pretrains one backbone on the source pool;
4. for each target: linear probe on the pretrained features, fine-tuning
   (classifier, then the whole network), training from scratch for as many
   steps, and the EMD domain similarity of source and target;
5. prints one table and writes `<run_dir>/summary.json` and
   `<run_dir>/transfer_vs_similarity.png` (the paper's Fig. 5: transfer
   accuracy against domain similarity, one point per target).

The world of seed 0 goes to `<data_dir>/world`, another seed's to
`<data_dir>/world_seed<N>`; runs go under `<run_dir>/seed<N>`, and
`<run_dir>/summary.json` describes the latest call. Every step resumes or
skips finished work, so rerunning after an interruption continues.
"""
import os
import resource
import time

from fgtf.command_line import cli_main, command_parser, non_negative_int, positive_int

SUMMARY_FILE = "summary.json"
FIGURE_FILE = "transfer_vs_similarity.png"


@cli_main
def main(argv=None):
    p = command_parser(__name__, __doc__)
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed of the world and of every run")
    p.add_argument("--data_dir", default="data", help="where the world is generated")
    p.add_argument("--run_dir", default=os.path.join("runs", "demo"),
                   help="where runs, features, the summary and the figure go")
    p.add_argument("--num_workers", "--workers", type=positive_int,
                   help="processes drawing images and writing shards (default: one per CPU)")
    args = p.parse_args(argv)
    summary = run_demo(args.data_dir, args.run_dir, seed=args.seed, num_workers=args.num_workers)
    print(format_summary(summary))
    print(f"wrote {os.path.join(args.run_dir, SUMMARY_FILE)} and {os.path.join(args.run_dir, FIGURE_FILE)}")


def run_demo(data_dir="data", run_dir=os.path.join("runs", "demo"), *, seed=0, recipe=None, num_workers=None,
             world_options=None):
    """Run the study on the world of `seed`; returns the summary dict written
    to `<run_dir>/summary.json`. `world_options` are passed to
    `generate_world` (tests make a tiny world with them)."""
    from fgtf.datasets.synthetic import generate_world
    from fgtf.fileio import write_json
    from fgtf.plots import transfer_vs_similarity_png
    from fgtf import study

    started = time.monotonic()
    recipe = recipe or study.Recipe()
    world_dir = world_folder(data_dir, seed)
    world = generate_world(world_dir, seed=seed, image_size=recipe.image_size, num_workers=num_workers,
                           **(world_options or {}))
    source_dir = os.path.join(world_dir, world["source"]["dataset_dir"])
    seed_dir = os.path.join(run_dir, f"seed{seed}")
    study.start(seed_dir, world)
    print(f"world {world_dir}: source pool of {world['source']['classes']} classes, "
          f"{world['source']['train_images']} training images; targets "
          + ", ".join(t["name"] for t in world["targets"]))

    source_run = study.pretrain_source(study.convert(source_dir, recipe), os.path.join(seed_dir, "source"), recipe, seed)
    targets = []
    for target in world["targets"]:
        name, target_dir = target["name"], os.path.join(world_dir, target["dataset_dir"])
        print(f"--- target {name}")
        folder = os.path.join(seed_dir, name)
        row = study.transfer(source_run, target_dir, folder, recipe, seed)
        row["scratch_top1"] = study.from_scratch(target_dir, os.path.join(folder, "scratch"), recipe, seed)
        row.update(study.domain_similarity(source_run, source_dir, target_dir, os.path.join(seed_dir, "features"),
                                           recipe, target_name=name))
        targets.append({"name": name, "family": target["family"], "dataset_dir": os.path.abspath(target_dir),
                        **row})

    summary = {"seed": seed, "wall_seconds": round(time.monotonic() - started, 1),
               "peak_rss_mib": round(peak_rss_mib(), 1),
               "source": {"dataset_dir": os.path.abspath(source_dir), "classes": world["source"]["classes"],
                          "train_images": world["source"]["train_images"], "run_dir": os.path.abspath(source_run)},
               "targets": targets, "recipe": recipe.as_dict()}
    for path in (os.path.join(seed_dir, SUMMARY_FILE), os.path.join(run_dir, SUMMARY_FILE)):
        write_json(path, summary)
    transfer_vs_similarity_png(targets, os.path.join(run_dir, FIGURE_FILE),
                               title=f"Transfer from the source pool (world seed {seed})")
    return summary


def world_folder(data_dir, seed):
    """Where the world of `seed` goes: `<data_dir>/world`, `world_seed<N>` for others."""
    return os.path.join(data_dir, "world" if seed == 0 else f"world_seed{seed}")


def peak_rss_mib():
    """Peak resident memory of this process plus that of its largest child
    process (the image and shard writers), an upper bound of the peak in MiB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return (own + children) / 1024  # Linux reports KiB


def format_summary(summary):
    """The study as a table: one line per target, chance = 1 / classes."""
    header = (f"{'target':<12} {'family':<12} {'classes':>7} {'chance':>7} {'scratch':>8} {'probe':>7} "
              f"{'kNN':>7} {'finetune':>9} {'EMD':>9} {'similarity':>10}")
    lines = [header, "-" * len(header)]
    for t in summary["targets"]:
        lines.append(f"{t['name']:<12} {t['family']:<12} {t['classes']:>7} {1 / t['classes']:>7.3f} "
                     f"{t['scratch_top1']:>8.3f} {t['probe_top1']:>7.3f} {t['knn_top1']:>7.3f} "
                     f"{t['finetune_top1']:>9.3f} {t['emd']:>9.3f} {t['similarity']:>10.4f}")
    lines.append(f"source pool: {summary['source']['classes']} classes, {summary['source']['train_images']} "
                 f"training images; wall {summary['wall_seconds']:.0f} s, peak memory "
                 f"{summary['peak_rss_mib']:.0f} MiB")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
