"""The embedded default: a procedurally generated fine-grained world.

    python -m fgtf.datasets.synthetic --out data/synthetic --classes 20 \\
        --train_per_class 30 --val_per_class 30 --image_size 160 --seed 0 \\
        [--family birds|planes|fish|butterflies] [--label_noise 0.4 --novel_classes 5] [--num_workers N]
    python -m fgtf.datasets.synthetic world --out data/world [--seed 0] [--image_size 64] [--num_workers N]

Every class of a family shares one object shape (a bird or a fish seen from
the side, an aircraft or a butterfly seen from above) and differs only in
local parts. A class is a combination of five local attributes (birds:
wing-bar colour, beak shape, breast pattern, head pattern, tail shape; planes:
engine count, wingtip colour, wing insignia, nose shape, canopy; fish: gill
patch colour, tail fin, dorsal fin, body pattern, snout; butterflies: forewing
spot colour, forewing shape, hindwing shape, forewing tip marking, hindwing
eyespot), drawn so that every attribute value is shared by many classes: no
single part decides the class. Parts are at least ~6 pixels across at 64 px
and contrast with the surface they sit on, except fish's body patterns, a
tone of the body that only a network looking for them reads. Pose (rotation, flip),
scale (the object spans 60-85 % of the frame), position, body colour,
background clutter, lighting (brightness, contrast, colour cast, a light
gradient), pixel noise and JPEG quality are drawn per image; the clutter
takes the part colours only away from the object. So colour histograms and
thumbnails carry almost no class information
(benchmarks/synthetic_difficulty.py measures it), while a small network can
learn the parts (benchmarks/world_learnability.py).

Written into `--out` (all paths relative to it):

    images/<class name>/<split>_<n>.jpg    the JPEGs (split is train or val)
    train.txt, val.txt                     seed-style lists `relative/path.jpg: <label>`
    classes.txt                            class names in label order
    train_clean_labels.txt                 train.txt with every image's true label
    synthetic.json                         the arguments, the attributes of every
                                           class, the novel classes; written last,
                                           so its presence marks a complete dataset

Web-like label noise (`--label_noise p --novel_classes N`): the last N classes
are "novel". For each of them round(p * train_per_class) of its training
images show another class (80 % of them one of the classes most similar to it,
i.e. sharing the most attributes; the rest any other class) but are listed,
and stored in the folder of, the novel class, as images found by a web search
for it would be. `train_clean_labels.txt` gives their true labels (an image is
mislabelled when its two labels differ); validation stays clean. Every other
image is byte-identical to the one the same seed writes without noise.

The transfer world (`world`, `generate_world`): the paper's setting from one
seed. All paths relative to `--out`:

    source/                the long-tailed source pool (iNat-like): 250 classes
                           shared out by SOURCE_SHARES (birds 140, planes 70,
                           fish 40, butterflies none), training images per class
                           falling exponentially with a random rank from 200 to
                           4 (about 12,600 in all), 5 validation images per class
    targets/<family>/      one small CUB-like target per family: 20 classes that
                           are not in the source (other combinations of the same
                           attributes), 30 train + 30 val images per class
    world.json             the arguments and, per folder, its classes and image
                           counts (see `generate_world`); written last, so its
                           presence marks a complete world

Each folder is a seed-style dataset (images/<class>/<split>_<n>.jpg,
train.txt, val.txt, classes.txt and a synthetic.json with every class's
family and attributes) that `python -m fgtf.convert --dataset synthetic
--dataset_dir <folder>` reads. Class names are the family and the attribute
values, `birds.red_bar-hooked_beak-spotted_breast-capped-forked_tail`, unique
over the world, so `grep '^birds\\.' source/classes.txt` is a `--class_list`
of the pool's birds.

Each image is drawn from its own seed (derived from `--seed`, the family, the
split, its class and its index), so the output is byte-identical for a seed
whatever `--num_workers` is. A dataset or world is built in `<out>.partial` and
renamed into place when complete; rerunning with the same arguments into a
complete folder returns at once, other arguments replace it.

The package:

    __main__.py   the command: python -m fgtf.datasets.synthetic [world] ...
    generation.py generate, generate_world, read_clean_labels: plan the
                  images, draw them (in worker processes), write the lists
                  and the metadata, swap the finished folder into place
    classes.py    families and attributes, class design and names, the
                  world's share-out of classes and its long-tailed counts
    planning.py   the checked arguments, every image's path, label and seed,
                  and the metadata describing them (no file is touched)
    draw.py       render_image: scenery, pose, each family's object, lighting
"""
from fgtf.datasets.synthetic.classes import (ATTRIBUTES, FAMILIES, SOURCE_SHARES, class_definitions, class_name,
                                             max_classes, world_class_name)
from fgtf.datasets.synthetic.draw import render_image
from fgtf.datasets.synthetic.generation import (CLEAN_LABELS_FILE, METADATA_FILE, WORLD_FILE, generate,
                                                generate_world, read_clean_labels)
from fgtf.datasets.synthetic.planning import FORMAT_VERSION

__all__ = ["ATTRIBUTES", "CLEAN_LABELS_FILE", "FAMILIES", "FORMAT_VERSION", "METADATA_FILE", "SOURCE_SHARES",
           "WORLD_FILE", "class_definitions", "class_name", "generate", "generate_world", "main", "max_classes",
           "read_clean_labels", "render_image", "world_class_name"]


def main(argv=None):
    """The command in this process, e.g. `main(["world", "--out", "data/world"])`."""
    # Imported here: `python -m fgtf.datasets.synthetic` runs __main__ itself, after importing this package.
    from fgtf.datasets.synthetic.__main__ import main as command

    command(argv)
