"""Overlay a network's attention and class activation maps on images, as
the figures of the SAM repository show them.

    python -m fgtf.visualize_attention --checkpoint runs/sam --images a.jpg b.jpg [--out DIR]
        [--image_size N] [--class_index K] [--labels classes.txt] [--no_ema]

`--checkpoint` (alias `--model_dir`) is an fgtf training run folder (its
network and head, its image size, its EMA weights when it kept them), a
Keras `.weights.h5` written by fgtf, a torchvision `.pth`, or a TF-Slim
checkpoint of `--model` (with its classifier). Each image goes through the
test transform of the run's `--preprocessing` pipeline (else the
network's; inception: central crop 0.875, resize to the image size) and one PNG per image is
written into `--out` (default <run>/attention for a run, else
attention/<checkpoint stem>): the input, the predicted attention map (SAM
runs: the channel max of the attention branch) and the class activation
map (CAM) of the predicted class, or of `--class_index`. Maps are computed
at the feature-map resolution, upsampled bilinearly to the image and
scaled to [0, 1] per image. Classes are named by `--labels` (default: the
run's classes.txt, which fgtf.train writes from the data's); each figure's
title gives the image's folder and file, its true class when that folder is
named as a class (`<class>/<image>.jpg`, as fgtf.convert reads image-folder
trees and the synthetic datasets store their images) and the predicted one.

The CAM needs a linear classifier on the spatial mean of a feature map,
so that the class logit is the mean over positions of each position's
contribution sum_c F[h, w, c] W[c, k] (plus the bias):
* SAM (every feature kind, through `SAM.attention_maps`);
* SEF (its global classifier `fc`);
* CLE (its `head` on the pooled backbone map);
* plain networks whose logits are a Dense layer or 1x1 convolution on the
  global average pool of a feature map (the ResNet-v2, Inception and
  Inception-ResNet classifiers). Other classifiers, CLE on a backbone
  that outputs pooled vectors, and SavedModels (opaque graphs) are
  reported as unsupported (exit 2).
"""
import os

import numpy as np

from fgtf._keras_internals import operation_inputs, producing_operation
from fgtf.command_line import add_network_flags, cli_main, command_parser, non_negative_int
from fgtf.errors import UserError


@cli_main
def main(argv=None):
    p = command_parser(__name__, __doc__)
    add_network_flags(p, saved_model=" (a SavedModel is refused: its classifier is not reachable for a CAM)",
                      checkpoint_aliases=("--model_dir",))
    p.add_argument("--images", nargs="+", required=True, help="image files (JPEG, PNG, GIF, BMP)")
    p.add_argument("--out", help="folder for the PNGs (default: <run>/attention for a run folder, else "
                                 "attention/<checkpoint stem>)")
    p.add_argument("--class_index", type=non_negative_int,
                   help="draw the CAM of this class (default: each image's predicted class)")
    p.add_argument("--labels", help="class names in label order, one per line (default: a run's classes.txt, else "
                                    "class numbers)")
    args = p.parse_args(argv)
    missing = [path for path in args.images if not os.path.isfile(path)]
    if missing:
        raise UserError(f"image file(s) not found: {', '.join(missing)}")
    from fgtf import checkpoints, runs

    loaded = checkpoints.load_network(args.checkpoint, model=args.model, image_size=args.image_size,
                                      use_ema=args.use_ema, preprocessing=args.preprocessing,
                                      saved_model_use="used for a CAM (its classifier is not reachable)")
    class_activation_source(loaded.network)  # a network whose CAM cannot be drawn is refused before any work
    if args.class_index is not None and not args.class_index < loaded.num_classes:
        raise UserError(f"--class_index must be in [0, {loaded.num_classes}), got {args.class_index}")
    out_dir = args.out or default_out(args.checkpoint, loaded.kind)
    class_names = runs.network_class_names(args.checkpoint, loaded.num_classes, args.labels)
    from_run = [name for name, given in (("image size", args.image_size), ("preprocessing", args.preprocessing))
                if given is None] + ["classes"]
    print(f"{args.checkpoint}: {checkpoints.describe(loaded, from_run)}")
    for index, path in enumerate(args.images):
        images = load_images([path], loaded.image_size, loaded.preprocessing)
        maps = attention_maps(loaded.network, images, args.class_index)
        png = os.path.join(out_dir, f"{index:03d}_{os.path.splitext(os.path.basename(path))[0]}.png")
        title = image_title(path, class_names, int(maps["predicted"][0]))
        write_overlay(images[0], maps, 0, png, title=title, class_names=class_names,
                      preprocessing=loaded.preprocessing)
        line = f"{title.replace(chr(10), '; ')} (p = {float(maps['predicted_probabilities'][0]):.3f})"
        if args.class_index is not None:
            line += f"; CAM of {class_names[args.class_index]} (p = {float(maps['probabilities'][0]):.3f})"
        print(f"{line} -> {png}")


def image_title(path, class_names, predicted):
    """`<folder>/<file>`, its true class when the folder names one of
    `class_names`, and the `predicted` class, one line each."""
    folder = os.path.basename(os.path.dirname(os.path.abspath(path)))
    name = class_names[predicted]
    lines = [f"{folder}/{os.path.basename(path)}"]
    if folder in class_names:
        lines += [f"true {folder}", f"predicted {name} ({'right' if folder == name else 'wrong'})"]
    else:
        lines.append(f"predicted {name}")
    return "\n".join(lines)


def default_out(checkpoint, kind):
    """<run>/attention for a run folder (or its run's, for a run checkpoint), else attention/<checkpoint stem>."""
    from fgtf.extract_features import checkpoint_stem

    if kind == "run":
        return os.path.join(checkpoint if os.path.isdir(checkpoint) else os.path.dirname(checkpoint), "attention")
    return os.path.join("attention", checkpoint_stem(checkpoint))


def load_images(paths, image_size, preprocessing="inception"):
    """Images (N, image_size, image_size, 3) through the test transform of the `preprocessing` pipeline."""
    import tensorflow as tf

    from fgtf.preprocessing import get_pipeline

    pipeline = get_pipeline(preprocessing)
    images = []
    for path in paths:
        try:
            images.append(pipeline(tf.io.read_file(path), image_size, training=False))
        except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as error:
            raise UserError(f"cannot read {path} as an image ({error.message.splitlines()[0]})") from None
    return tf.stack(images)


def attention_maps(model, images, class_index=None):
    """Maps of a run's network for `images` (N, H, W, 3) as numpy arrays:
    `predicted` (N,) the predicted class and `predicted_probabilities` (N,)
    its softmax probability, `classes` (N,) the class of the maps (the
    predicted one, or `class_index` for all) and `probabilities` (N,) its
    probability, `cam` (N, h, w) the ReLU of its class activation map at
    the feature-map resolution, and for SAM also `attention` (N, h, w) the
    predicted attention map."""
    from keras import ops

    logits = model(images, training=False)
    if isinstance(logits, (list, tuple)):  # aux logits come second
        logits = logits[0]
    probabilities = ops.convert_to_numpy(ops.softmax(ops.cast(logits, "float32"), axis=-1))
    predicted = probabilities.argmax(axis=-1)
    classes = predicted if class_index is None else np.full(len(predicted), class_index)
    rows = np.arange(len(predicted))
    maps = {"predicted": predicted, "predicted_probabilities": probabilities[rows, predicted],
            "classes": classes, "probabilities": probabilities[rows, classes]}
    feature_map_of, kernel = class_activation_source(model)
    if feature_map_of is None:  # a head that draws its own maps (SAM)
        own = model.attention_maps(images, ops.cast(classes, "int32"))
        maps["attention"] = ops.convert_to_numpy(own["predicted"])
        maps["cam"] = ops.convert_to_numpy(own["cam"])
        return maps
    cam = class_activation_map(feature_map_of(images), kernel, classes)
    maps["cam"] = ops.convert_to_numpy(ops.relu(cam))
    return maps


def class_activation_source(model):
    """(feature_map_of, kernel) for the CAM of a run's network: a function
    images -> feature map (N, h, w, C) (inference mode) and the classifier
    kernel (C, K) applied to its spatial mean, as its head's `cam_source`
    gives them (fgtf.models.heads.HEADS). A head that computes its own maps
    (SAM) gives (None, None). Raises UserError for an unsupported network."""
    import keras

    from fgtf.models.heads import head_of

    head = head_of(model)
    if head is not None:
        return head.cam_source(model) if head.cam_source else (None, None)
    feature_tensor, classifier = _linear_classifier_on_pool(model)
    feature_model = keras.Model(model.input, feature_tensor)
    kernel = keras.ops.reshape(classifier.kernel, (-1, classifier.kernel.shape[-1]))
    return (lambda images: feature_model(images, training=False)), kernel


def class_activation_map(feature_map, kernel, classes):
    """sum_c F[n, h, w, c] W[c, classes[n]]: (N, h, w), the class logit's
    contribution of each position (their mean plus the bias is the logit)."""
    from keras import ops

    columns = ops.transpose(ops.take(kernel, ops.cast(classes, "int32"), axis=1))  # (N, C)
    return ops.einsum("nhwc,nc->nhw", ops.cast(feature_map, "float32"), ops.cast(columns, "float32"))


def write_overlay(image, maps, index, path, title=None, class_names=None, preprocessing="inception"):
    """One PNG for image `index` of `maps` (`attention_maps`): the input
    (`image` (H, W, 3) as the `preprocessing` pipeline gives it), then each
    map upsampled and overlaid, the CAM titled with its class's name from
    `class_names` (else its number)."""
    from fgtf.plots import attention_overlay_png
    from fgtf.preprocessing import get_pipeline

    rgb = get_pipeline(preprocessing).denormalize(np.asarray(image, dtype=np.float32))
    image = np.clip(np.asarray(rgb), 0.0, 1.0)
    panels = []
    if "attention" in maps:
        panels.append(("predicted attention", _upsampled(maps["attention"][index], image.shape[:2])))
    cam_class = int(maps["classes"][index])
    label = (f"CAM (p = {float(maps['probabilities'][index]):.2f}) of\n"
             + (class_names[cam_class] if class_names else f"class {cam_class}"))
    panels.append((label, _upsampled(maps["cam"][index], image.shape[:2])))
    attention_overlay_png(image, panels, path, title=title)


def _upsampled(heatmap, size):
    """Bilinear upsampling of a (h, w) map to `size`, scaled to [0, 1]
    (a constant map becomes all zeros)."""
    import tensorflow as tf

    resized = tf.image.resize(np.asarray(heatmap, dtype=np.float32)[..., None], size, method="bilinear")
    resized = resized.numpy()[..., 0]
    span = resized.max() - resized.min()
    return (resized - resized.min()) / span if span > 0 else np.zeros_like(resized)


def _linear_classifier_on_pool(model):
    """(feature map tensor, classifier layer) of a functional network whose
    first output is Dense / 1x1 Conv2D (linear) of the global average pool of
    a feature map, with only Flatten, Reshape or Dropout in between; else
    UserError."""
    import keras
    from keras import layers

    passthrough = (layers.Flatten, layers.Reshape, layers.Dropout)
    tensor = model.outputs[0] if getattr(model, "outputs", None) else None
    layer = producing_operation(tensor)
    while isinstance(layer, passthrough):
        tensor, layer = _layer_input(tensor)
    classifier = layer
    linear = getattr(classifier, "activation", None) is keras.activations.linear
    if not (isinstance(classifier, layers.Dense) or (isinstance(classifier, layers.Conv2D)
                                                     and tuple(classifier.kernel_size) == (1, 1))) or not linear:
        raise UserError(f"no CAM for {model.name}: its logits are not a linear Dense or 1x1 conv layer "
                        f"on globally pooled features (found {type(classifier).__name__})")
    tensor, layer = _layer_input(tensor)
    while isinstance(layer, layers.Dropout):
        tensor, layer = _layer_input(tensor)
    if not isinstance(layer, layers.GlobalAveragePooling2D):
        raise UserError(f"no CAM for {model.name}: its classifier {classifier.name} does not read a global "
                        f"average pool of a feature map (found {type(layer).__name__})")
    feature_tensor, _ = _layer_input(tensor)
    return feature_tensor, classifier


def _layer_input(tensor):
    """(input tensor, its producing layer) of the layer that made `tensor`."""
    (source,) = operation_inputs(tensor)
    return source, producing_operation(source)


if __name__ == "__main__":
    main()
