"""The seeds' pipelines (`--preprocessing sef|sef_squash|sam|cle|simtrans`)
through fgtf's tf.data against the originals' torchvision DataLoader, on the
same JPEGs: images per CPU-second of each, train and test transforms, and
their ratio.

    nice -n 10 python benchmarks/seed_pipelines.py --torch_python /work/sidevenvs/torch/bin/python \\
        [--images 2000] [--work_dir DIR] [--pipelines sef sam]

Both sides decode the JPEGs, transform them as the seed does, normalise
with the ImageNet mean and std and batch them by 32:
* fgtf: `fgtf.input_pipeline.image_file_dataset(..., preprocessing=NAME)`
  (parallel map, AUTOTUNE), in this process;
* torchvision: a `DataLoader` with 2 workers over a Dataset that opens
  each file with PIL and applies the seed's torchvision transforms
  (tests/reference/torchvision/seed_transforms.py, the same compositions the
  reference outputs come from), then ToTensor and Normalize; run by
  `--torch_python` (a side environment with torch and torchvision, never an
  fgtf dependency) as a subprocess of this script.
CPU time is user + system of the process and its workers (children), over
one pass through all images after a short warm-up pass (tracing, XLA
compilation, worker start), so the figure does not depend on how busy the
machine's cores are. Each pipeline's two sides run one after the other.
The JPEGs (~500x375, a quarter portrait, quality 90, drawn from a seed) are
made once in `--work_dir`.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TORCHVISION_TRANSFORMS = os.path.join(REPO, "tests", "reference", "torchvision")
SIDES = {"sef": 448, "sef_squash": 448, "sam": 224, "cle": 448, "simtrans": 224}
MODES = ("train", "test")
BATCH = 32
WARM_UP_IMAGES = 96


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--torch_python", help="python of a side environment with torch and torchvision")
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--work_dir", help="keep the JPEGs here (default: a temporary folder)")
    parser.add_argument("--pipelines", nargs="+", choices=sorted(SIDES), default=list(SIDES))
    parser.add_argument("--torch_side", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    work = args.work_dir or tempfile.mkdtemp(prefix="fgtf_seed_pipelines_")
    if args.torch_side:
        _torch_side(work, args.pipelines)
        return
    if not args.torch_python:
        parser.error("--torch_python is required (a python with torch and torchvision)")
    paths = _jpegs(os.path.join(work, "jpegs"), args.images)
    rows = []
    for pipeline in args.pipelines:
        measured = _run_torch_side(args.torch_python, work, pipeline)
        for mode in MODES:
            fgtf_rate = _fgtf_rate(paths, pipeline, mode)
            torch_rate = measured[mode]
            rows.append((pipeline, mode, fgtf_rate, torch_rate))
            print(f"{pipeline:<11} {mode:<5} fgtf {fgtf_rate:7.1f}  torchvision {torch_rate:7.1f} images/CPU-s  "
                  f"ratio {fgtf_rate / torch_rate:.2f}", flush=True)
    print(f"\n{len(paths)} JPEGs, batch {BATCH}; images per CPU-second (process and workers, user + system)")
    print(f"{'pipeline':<11} {'mode':<5} {'fgtf tf.data':>13} {'torchvision':>12} {'ratio':>6}")
    for pipeline, mode, fgtf_rate, torch_rate in rows:
        print(f"{pipeline:<11} {mode:<5} {fgtf_rate:>13.1f} {torch_rate:>12.1f} {fgtf_rate / torch_rate:>6.2f}")


def _jpegs(folder, count):
    """`count` JPEGs of about 500x375 (every fourth portrait), made once from seed 0."""
    import numpy as np
    from PIL import Image, ImageDraw

    os.makedirs(folder, exist_ok=True)
    paths = [os.path.join(folder, f"{index:05d}.jpg") for index in range(count)]
    rng = np.random.default_rng(0)
    for index, path in enumerate(paths):
        width, height = int(rng.integers(480, 521)), int(rng.integers(360, 391))
        if index % 4 == 3:
            width, height = height, width
        if os.path.isfile(path):
            continue
        y, x = np.mgrid[0:height, 0:width] / 500.0
        waves = rng.uniform(0.5, 4.0, (3, 2))
        phases = rng.uniform(0, 6.3, 3)
        picture = np.stack([128 + 100 * np.sin(2 * np.pi * (f * x + g * y) + p)
                            for (f, g), p in zip(waves, phases)], axis=-1)
        image = Image.fromarray(picture.astype(np.uint8))
        draw = ImageDraw.Draw(image)
        for _ in range(20):
            x0, y0 = rng.uniform(0, width), rng.uniform(0, height)
            draw.ellipse([x0, y0, x0 + rng.uniform(10, 120), y0 + rng.uniform(10, 120)],
                         fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
        image.save(path + ".tmp", "JPEG", quality=90)
        os.replace(path + ".tmp", path)
    return paths


def _cpu_seconds():
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _fgtf_rate(paths, pipeline, mode):
    """Images per CPU-second of fgtf's tf.data pipeline over `paths`."""
    import numpy as np

    sys.path.insert(0, REPO)
    from fgtf.input_pipeline import image_file_dataset

    def dataset(files):
        seeds = np.stack([np.zeros(len(files)), np.arange(len(files))], axis=1) if mode == "train" else None
        return image_file_dataset(files, image_size=SIDES[pipeline], batch_size=BATCH, preprocessing=pipeline,
                                  seeds=seeds)

    for _ in dataset(paths[:WARM_UP_IMAGES]):
        pass
    measured = dataset(paths)
    start, images = _cpu_seconds(), 0
    for batch in measured:
        images += int(batch.shape[0])
    return images / (_cpu_seconds() - start)


def _run_torch_side(python, work, pipeline):
    """{mode: images per CPU-second} of the torchvision DataLoader, measured in a side environment."""
    done = subprocess.run([python, os.path.abspath(__file__), "--torch_side", "--work_dir", work,
                           "--pipelines", pipeline], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _torch_side(work, pipelines):
    """(In the side environment.) Prints {mode: images per CPU-second} of each pipeline as JSON."""
    import torch
    from PIL import Image

    sys.path.insert(0, TORCHVISION_TRANSFORMS)
    import seed_transforms

    folder = os.path.join(work, "jpegs")
    paths = sorted(os.path.join(folder, name) for name in os.listdir(folder) if name.endswith(".jpg"))

    class Files(torch.utils.data.Dataset):
        def __init__(self, files, transform):
            self.files, self.transform = files, transform

        def __len__(self):
            return len(self.files)

        def __getitem__(self, index):
            image = Image.open(self.files[index]).convert("RGB")
            return seed_transforms.TO_TENSOR(self.transform(image))

    for pipeline in pipelines:
        transforms = {"train": seed_transforms.RANDOM_TRAINS[pipeline], "test": seed_transforms.TESTS[pipeline]}
        rates = {}
        for mode, transform in transforms.items():
            for _ in torch.utils.data.DataLoader(Files(paths[:WARM_UP_IMAGES], transform), batch_size=BATCH,
                                                 num_workers=2):
                pass
            start, images = _cpu_seconds(), 0
            for batch in torch.utils.data.DataLoader(Files(paths, transform), batch_size=BATCH, num_workers=2,
                                                     shuffle=mode == "train"):
                images += int(batch.shape[0])
            rates[mode] = images / (_cpu_seconds() - start)
        print(json.dumps(rates), flush=True)


if __name__ == "__main__":
    main()
