"""Drawing one image of the synthetic world: the family's scenery, the object
in a random pose with the parts of its class, then lighting and noise.

Shapes are polygons in a canonical object frame (x forward, y down, the
object about 2.5 units long), mapped to the canvas by a per-image pose. A
part is 0.12 units or more across: 2-3 pixels at 64 px, where a unit is
17-23 pixels. Everything random is drawn from the image's own seed, in a
fixed order: changing the order of the draws changes every image of every
seed (and needs a new `FORMAT_VERSION`).
"""
import colorsys
import functools
import math
import typing

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from fgtf.datasets.synthetic.classes import ATTRIBUTES, attribute_values

# Drawing happens at this multiple of the image size, then a box filter
# downsamples: cheap antialiasing for PIL's aliased polygons.
_SUPERSAMPLE = 2


def render_image(family, values, image_seed, image_size=160):
    """Draw one `image_size` x `image_size` RGB image (PIL) of the class with
    attribute value indices `values`; `image_seed` (an int or a tuple of ints)
    fixes everything else (pose, colours, background, lighting, noise)."""
    rng = np.random.default_rng(np.random.SeedSequence(image_seed))
    canvas_size = image_size * _SUPERSAMPLE
    canvas = _draw_scene(rng, family, attribute_values(family, values), canvas_size)
    image = canvas.resize((image_size, image_size), Image.BOX)
    return _apply_lighting(rng, image)


def _draw_scene(rng, family, attributes, canvas_size):
    """Scenery of the family's habitat with the object on top, on a canvas of
    `canvas_size` pixels. The pose comes first so that the clutter near the
    object can be kept grey-ish: part colours appear in the clutter only away
    from the object, where they cannot be mistaken for a part."""
    length, max_angle, allow_flip, scenery, draw_object = _FAMILY_DRAWING[family]
    pose = _random_pose(rng, canvas_size, length, max_angle, allow_flip)
    size = canvas_size // _SUPERSAMPLE  # the background is blurry anyway: draw it at image size
    clutter = _Clutter(pose.centre / _SUPERSAMPLE, pose.scale * length * 0.6 / _SUPERSAMPLE, _PALETTES[family])
    canvas = _enlarge(scenery(rng, size, clutter), canvas_size)
    draw_object(canvas, rng, pose, attributes)
    return canvas


class _Pose:
    """Canonical object coordinates -> canvas pixels: flip, rotate, scale, shift."""

    def __init__(self, scale, angle, flip, centre):
        cos, sin = math.cos(angle), math.sin(angle)
        self.scale = scale
        self.matrix = scale * np.array([[cos, -sin], [sin, cos]]) @ np.diag([-1.0 if flip else 1.0, 1.0])
        self.centre = np.asarray(centre, dtype=float)

    def moved(self, offset):
        """The same pose shifted by `offset` pixels."""
        moved = _Pose.__new__(_Pose)
        moved.scale, moved.matrix, moved.centre = self.scale, self.matrix, self.centre + offset
        return moved

    def __call__(self, points):
        mapped = np.asarray(points, dtype=float) @ self.matrix.T + self.centre
        return [tuple(p) for p in mapped]


def _random_pose(rng, canvas_size, length, max_angle, allow_flip):
    """A pose putting an object `length` canonical units long at 68-85 % of the
    canvas width, rotated up to `max_angle` degrees, somewhere inside the canvas."""
    fraction = rng.uniform(0.68, 0.85)
    scale = fraction * canvas_size / length
    slack = (1.0 - fraction) * canvas_size / 2
    centre = canvas_size / 2 + rng.uniform(-slack, slack, size=2)
    angle = math.radians(rng.uniform(-max_angle, max_angle))
    return _Pose(scale, angle, allow_flip and rng.random() < 0.5, centre)


def _ellipse(cx, cy, rx, ry, angle=0.0, n=28):
    """Polygon of an ellipse centred at (cx, cy), radii rx, ry, turned by `angle` degrees."""
    a = math.radians(angle)
    cos, sin = math.cos(a), math.sin(a)
    return _unit_circle(n) @ np.array([[rx * cos, rx * sin], [-ry * sin, ry * cos]]) + (cx, cy)


@functools.lru_cache(maxsize=None)
def _unit_circle(n):
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([np.cos(t), np.sin(t)], axis=1)


def _arc(cx, cy, radius, start, stop, n=10):
    """Points on a circle from angle `start` to `stop` (degrees, y down)."""
    t = np.radians(np.linspace(start, stop, n))
    return np.stack([cx + radius * np.cos(t), cy + radius * np.sin(t)], axis=1)


def _bar(start, end, width):
    """Polygon of a straight bar of `width` from `start` to `end`."""
    start, end = np.asarray(start, float), np.asarray(end, float)
    direction = end - start
    normal = np.array([-direction[1], direction[0]]) / (np.linalg.norm(direction) + 1e-9) * width / 2
    return np.stack([start + normal, end + normal, end - normal, start - normal])


def _mirror(points):
    """The same polygon reflected across the object's long axis (y -> -y)."""
    return np.asarray(points, float) * [1.0, -1.0]


def _colour(rng, hue=None, saturation=(0.2, 0.8), value=(0.3, 0.95)):
    """A random RGB colour (ints); `hue` in [0, 1) fixes the hue, tuples are ranges."""
    h = rng.random() if hue is None else hue % 1.0
    r, g, b = colorsys.hsv_to_rgb(h, rng.uniform(*saturation), rng.uniform(*value))
    return (int(r * 255), int(g * 255), int(b * 255))


def _distinct_colour(rng, avoid, **ranges):
    """A random colour (as `_colour`) at least some way from each colour in
    `avoid`, so that a coloured part stands out from the surface it sits on."""
    for _ in range(30):
        colour = _colour(rng, **ranges)
        if all(sum((a - b) ** 2 for a, b in zip(colour, other)) >= 110 ** 2 for other in avoid):
            return colour
    return colour


def _jitter(rng, colour, amount=18):
    """`colour` with each channel moved by up to `amount` (a part's colour is never exact)."""
    return tuple(min(255, max(0, int(c + rng.integers(-amount, amount + 1)))) for c in colour)


def _contrasting(rng, colour):
    """A random colour much darker than `colour`, or much lighter when `colour` is dark."""
    luminance = _luminance(colour)
    if luminance > 0.45:
        return _colour(rng, saturation=(0.0, 0.6), value=(0.03, max(0.05, luminance - 0.35)))
    return _colour(rng, saturation=(0.0, 0.3), value=(min(0.95, luminance + 0.45), 1.0))


def _toned(colour):
    """`colour` a tone darker, or lighter when it is dark: a mark only a network
    that learnt to look for it reads, unlike a contrasting one."""
    return _shade(colour, 0.65 if _luminance(colour) > 0.45 else 1.5)


def _luminance(colour):
    """Perceived brightness of an RGB colour, 0..1."""
    return (0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]) / 255


def _shade(colour, factor):
    return tuple(min(255, max(0, int(c * factor))) for c in colour)


# Colours of the colour-valued attributes. Each family has its own four, so
# a network that learnt one family's colour parts does not read another's for
# free; butterflies, absent from the pool, share the planes' four, so that the
# family they look most like (seen from above, wings spread) is also the one
# whose parts they share. Body colours take any hue and the clutter away from the object takes
# the family's part colours too, so no pixel colour gives a class away; on the
# object a part always contrasts with its surface.
_ORANGE, _GREEN, _BLACK, _MAGENTA = (240, 130, 20), (40, 170, 70), (25, 25, 28), (210, 40, 190)
_PART_COLOURS = {
    "red_bar": (205, 40, 35), "yellow_bar": (240, 205, 40), "white_bar": (240, 240, 232), "blue_bar": (45, 95, 215),
    "orange_tips": _ORANGE, "green_tips": _GREEN, "black_tips": _BLACK, "magenta_tips": _MAGENTA,
    "purple_gill": (120, 50, 190), "cyan_gill": (40, 200, 220), "pink_gill": (250, 150, 190),
    "lime_gill": (170, 230, 40),
    "orange_spots": _ORANGE, "green_spots": _GREEN, "black_spots": _BLACK, "magenta_spots": _MAGENTA,
}
_PALETTES = {family: tuple(_PART_COLOURS[value] for _, values in attributes for value in values
                           if value in _PART_COLOURS)
             for family, attributes in ATTRIBUTES.items()}


def _background(rng, canvas_size, base_colours, texture):
    """Canvas with a vertical gradient between `base_colours` plus low-frequency
    colour texture of strength `texture` (0..255)."""
    top, bottom = (np.array(c, dtype=np.float32) for c in base_colours)
    t = np.linspace(0.0, 1.0, canvas_size, dtype=np.float32)[:, None, None]
    pixels = np.broadcast_to(top * (1 - t) + bottom * t, (canvas_size, canvas_size, 3)).copy()
    grid = rng.integers(0, 256, size=(int(rng.integers(3, 9)),) * 2 + (3,), dtype=np.uint8)
    blotches = np.asarray(Image.fromarray(grid).resize((canvas_size, canvas_size), Image.BICUBIC), np.float32)
    pixels += (blotches - 128.0) * (texture / 128.0)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _enlarge(image, size):
    return image.resize((size, size), Image.BILINEAR)


class _Clutter(typing.NamedTuple):
    """How a scene's clutter is coloured: kept greyish within `radius` pixels
    of `centre` (the object), often in one of the `palette` colours elsewhere."""
    centre: np.ndarray
    radius: float
    palette: tuple


def _clutter_colour(rng, theme_hue, point, clutter):
    """Near the object, a greyish colour of the scene's theme hue; elsewhere
    often one of the family's part colours (so that a colour histogram cannot
    tell which one the object carries), sometimes any colour, else one near
    the theme hue."""
    if np.hypot(*(np.asarray(point, float) - clutter.centre)) < clutter.radius:
        return _colour(rng, hue=theme_hue + rng.normal(0, 0.06), saturation=(0.0, 0.25))
    draw = rng.random()
    if draw < 0.4:
        return _jitter(rng, clutter.palette[int(rng.integers(len(clutter.palette)))], 30)
    if draw < 0.55:
        return _colour(rng, saturation=(0.3, 1.0))
    return _colour(rng, hue=theme_hue + rng.normal(0, 0.06))


def _blobs(draw, rng, size, theme, clutter, count, radius):
    """`count` random ellipses of radius `radius` (a range, in canvas fractions)."""
    for _ in range(int(rng.integers(*count))):
        centre = rng.uniform(0, size, 2)
        draw.polygon([tuple(p) for p in _ellipse(*centre, *rng.uniform(*radius, 2) * size, angle=rng.uniform(0, 180))],
                     fill=_clutter_colour(rng, theme, centre, clutter))


def _strokes(draw, rng, size, count, width, colour):
    """`count` straight bars across the canvas, each coloured by `colour(rng)`."""
    for _ in range(int(rng.integers(*count))):
        draw.polygon([tuple(p) for p in _bar(rng.uniform(-0.2, 1.2, 2) * size, rng.uniform(-0.2, 1.2, 2) * size,
                                             rng.uniform(*width) * size)], fill=colour(rng))


def _brown(rng):
    return _colour(rng, hue=rng.uniform(0.02, 0.12), value=(0.15, 0.6))


def _woodland(rng, size, clutter):
    """Birds' scenery: sky-to-foliage gradient, leaves, twigs."""
    theme = rng.random()
    canvas = _background(rng, size, (_colour(rng, hue=theme + 0.5, value=(0.5, 1.0)), _colour(rng, hue=theme)),
                         texture=rng.uniform(5, 30))
    draw = ImageDraw.Draw(canvas)
    _blobs(draw, rng, size, theme, clutter, (6, 22), (0.02, 0.1))
    _strokes(draw, rng, size, (0, 4), (0.01, 0.03), _brown)
    return canvas.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 2.5)))


def _airfield(rng, size, clutter):
    """Planes' scenery, seen from above: tarmac, grass or sand, buildings, markings."""
    ground = rng.choice(["tarmac", "grass", "sand", "any"])
    theme = {"tarmac": rng.random(), "grass": rng.uniform(0.2, 0.4), "sand": rng.uniform(0.07, 0.14),
             "any": rng.random()}[ground]
    saturation = (0.0, 0.15) if ground == "tarmac" else (0.2, 0.7)
    canvas = _background(rng, size, (_colour(rng, hue=theme, saturation=saturation),
                                     _colour(rng, hue=theme, saturation=saturation)), texture=rng.uniform(10, 40))
    draw = ImageDraw.Draw(canvas)
    for _ in range(int(rng.integers(2, 9))):  # buildings, fields, parked vehicles
        centre = rng.uniform(0, size, 2)
        corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * rng.uniform(0.03, 0.18, 2) * size
        turn = rng.uniform(0, np.pi)
        rotation = np.array([[math.cos(turn), -math.sin(turn)], [math.sin(turn), math.cos(turn)]])
        draw.polygon([tuple(p) for p in corners @ rotation.T + centre], fill=_clutter_colour(rng, theme, centre, clutter))
    _strokes(draw, rng, size, (1, 5), (0.005, 0.025),  # runway and taxiway markings
             lambda rng: _jitter(rng, [(235, 235, 230), (230, 195, 40)][int(rng.integers(2))], 15))
    return canvas.filter(ImageFilter.GaussianBlur(rng.uniform(0.0, 1.5)))


def _underwater(rng, size, clutter):
    """Fish's scenery: blue-green water, rocks, weed, bubbles."""
    theme = rng.uniform(0.3, 0.7) if rng.random() < 0.7 else rng.random()
    canvas = _background(rng, size, (_colour(rng, hue=theme, value=(0.5, 0.95)),
                                     _colour(rng, hue=theme + rng.normal(0, 0.05), value=(0.15, 0.6))),
                         texture=rng.uniform(10, 40))
    draw = ImageDraw.Draw(canvas)
    _blobs(draw, rng, size, theme, clutter, (3, 12), (0.04, 0.14))  # rocks and coral
    _strokes(draw, rng, size, (1, 6), (0.01, 0.03),  # weed
             lambda rng: _colour(rng, hue=rng.uniform(0.2, 0.45), value=(0.2, 0.7)))
    for _ in range(int(rng.integers(0, 8))):  # bubbles
        centre, radius = rng.uniform(0, size, 2), rng.uniform(0.006, 0.02) * size
        draw.polygon([tuple(p) for p in _ellipse(*centre, radius, radius, n=10)], fill=(225, 235, 240))
    return canvas.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 2.5)))


def _meadow(rng, size, clutter):
    """Butterflies' scenery, seen from above: grass and leaves with blossoms."""
    theme = rng.uniform(0.15, 0.45) if rng.random() < 0.7 else rng.random()
    canvas = _background(rng, size, (_colour(rng, hue=theme), _colour(rng, hue=theme + rng.normal(0, 0.05))),
                         texture=rng.uniform(10, 40))
    draw = ImageDraw.Draw(canvas)
    _strokes(draw, rng, size, (2, 9), (0.01, 0.03),  # grass blades and stems
             lambda rng: _colour(rng, hue=rng.uniform(0.18, 0.4), value=(0.2, 0.8)))
    _blobs(draw, rng, size, theme, clutter, (4, 14), (0.02, 0.08))  # leaves and blossoms
    return canvas.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 2.5)))


def _filler(canvas, pose):
    """`fill(points, colour)`: a polygon in the object's coordinates, drawn on
    `canvas` through `pose`."""
    draw = ImageDraw.Draw(canvas)

    def fill(points, colour):
        draw.polygon(pose(points), fill=colour)
    return fill


def _draw_bird(canvas, rng, pose, attributes):
    """A perched songbird facing +x (before the pose) on a branch: tail, legs,
    body, breast pattern, wing with its bar, head with its pattern, beak, eye."""
    draw = ImageDraw.Draw(canvas)
    fill = _filler(canvas, pose)

    size = canvas.size[0]
    feet = np.array(pose([(0.03, 0.55)])[0])  # the perch passes under the feet, roughly along the bird's axis
    perch_angle = math.atan2(pose.matrix[1, 0], pose.matrix[0, 0]) + rng.normal(0, 0.25)
    reach = np.array([math.cos(perch_angle), math.sin(perch_angle)]) * size * 1.5
    draw.polygon([tuple(p) for p in _bar(feet - reach, feet + reach, rng.uniform(0.025, 0.05) * size)],
                 fill=_brown(rng))

    bar = _jitter(rng, _PART_COLOURS[attributes["wing_bar"]])
    body = _distinct_colour(rng, [bar], saturation=(0.1, 0.7), value=(0.25, 0.9))
    wing = _shade(_jitter(rng, body, 20), rng.uniform(0.7, 1.15))
    head = body if rng.random() < 0.6 else _distinct_colour(rng, [bar], saturation=(0.1, 0.7), value=(0.25, 0.9))
    mark = _contrasting(rng, body)  # spots, streaks, bib, cap, eye stripe
    width = rng.uniform(0.92, 1.08)  # plumpness

    tail = {
        "forked_tail": [(-0.5, -0.08), (-1.1, -0.32), (-0.9, 0.0), (-1.1, 0.26), (-0.5, 0.12)],
        "round_tail": [(-0.5, -0.09)] + [tuple(p) for p in _ellipse(-0.8, 0.02, 0.28, 0.21, n=16)[12:3:-1]]
                      + [(-0.5, 0.12)],
        "pointed_tail": [(-0.5, -0.09), (-1.12, 0.03), (-0.5, 0.12)],
        "square_tail": [(-0.5, -0.09), (-1.0, -0.19), (-1.0, 0.23), (-0.5, 0.12)],
    }[attributes["tail"]]
    fill(tail, wing)
    leg_colour = _colour(rng, saturation=(0.0, 0.5), value=(0.2, 0.7))
    for x in (-0.05, 0.1):
        fill(_bar((x, 0.2), (x + 0.02, 0.55), 0.045), leg_colour)
    fill(_ellipse(0.0, 0.0, 0.58, 0.33 * width, angle=-12), body)
    if rng.random() < 0.5:  # paler belly, a nuisance shared by all classes
        fill(_ellipse(0.12, 0.13, 0.36, 0.15 * width, angle=-12), _shade(body, rng.uniform(1.1, 1.4)))

    breast = attributes["breast"]
    if breast == "spotted_breast":
        for x, y in zip(rng.uniform(0.1, 0.42, 4), rng.uniform(0.04, 0.2, 4)):
            fill(_ellipse(x, y, 0.1, 0.1, n=12), mark)
    elif breast == "streaked_breast":
        for x, y in zip(rng.uniform(0.1, 0.4, 4), rng.uniform(0.0, 0.2, 4)):
            fill(_ellipse(x, y, 0.16, 0.06, angle=-20, n=12), mark)
    elif breast == "bib":
        fill(_ellipse(0.4, -0.02, 0.22, 0.2, n=20), mark)

    fill(_ellipse(-0.1, -0.07, 0.44, 0.19 * width, angle=-14), wing)
    fill(_ellipse(-0.02, -0.07, 0.18, 0.2 * width, angle=-14), bar)

    head_x, head_y, head_r = 0.55, -0.33, 0.3
    fill(_ellipse(head_x, head_y, head_r, head_r), head)
    pattern = attributes["head"]
    if pattern == "capped":
        fill(_arc(head_x, head_y, head_r, 195, 345, 12), mark)
    elif pattern == "eyestriped":
        fill(_ellipse(head_x + 0.04, head_y - 0.04, 0.3, 0.1), mark)
    elif pattern == "cheek_patch":
        fill(_ellipse(head_x - 0.03, head_y + 0.09, 0.17, 0.12), _contrasting(rng, head))

    if rng.random() < 0.5:  # a beak in a part colour half of the time: the bar's colour is not alone on the bird
        beak_colour = _jitter(rng, _PALETTES["birds"][int(rng.integers(len(_PALETTES["birds"])))])
    else:
        beak_colour = _distinct_colour(rng, [head], hue=rng.uniform(0.0, 0.15), saturation=(0.0, 0.8),
                                       value=(0.1, 0.9))
    base = head_x + head_r - 0.03
    beak = {
        "short_beak": [(base, head_y - 0.07), (base + 0.2, head_y + 0.01), (base, head_y + 0.08)],
        "long_beak": [(base, head_y - 0.05), (base + 0.42, head_y + 0.04), (base, head_y + 0.05)],
        "hooked_beak": [(base, head_y - 0.08), (base + 0.2, head_y - 0.08), (base + 0.3, head_y + 0.0),
                        (base + 0.27, head_y + 0.12), (base + 0.2, head_y + 0.04), (base, head_y + 0.08)],
        "thick_beak": [(base - 0.03, head_y - 0.14), (base + 0.24, head_y + 0.0), (base - 0.03, head_y + 0.14)],
    }[attributes["beak"]]
    fill(beak, beak_colour)
    fill(_ellipse(head_x + 0.09, head_y - 0.05, 0.05, 0.05, n=12), (15, 12, 10))
    fill(_ellipse(head_x + 0.1, head_y - 0.06, 0.015, 0.015, n=8), (235, 235, 235))


def _plane_silhouette(sweep):
    """Polygons of the parts every aircraft shares: fuselage, wings, tailplanes."""
    fuselage = [(0.72, -0.12), (-0.6, -0.12), (-0.98, -0.05), (-0.98, 0.05), (-0.6, 0.12), (0.72, 0.12)]
    wing = [(0.22, -0.1), (-0.22 - sweep, -0.88), (-0.42 - sweep, -0.88), (-0.26, -0.1)]
    tailplane = [(-0.68, -0.05), (-0.86 - sweep / 2, -0.34), (-0.98 - sweep / 2, -0.34), (-0.92, -0.05)]
    return [fuselage, wing, _mirror(wing), tailplane, _mirror(tailplane)]


def _wing_point(sweep, span, chord_fraction):
    """Canonical point on the (upper) wing at `span` (0.1..0.88 across) and
    `chord_fraction` (0 leading edge .. 1 trailing edge)."""
    t = (span - 0.1) / 0.78
    leading = 0.22 + t * (-0.44 - sweep)
    trailing = -0.26 + t * (-0.16 - sweep)
    return np.array([leading + chord_fraction * (trailing - leading), -span])


def _draw_plane(canvas, rng, pose, attributes):
    """An aircraft seen from above, nose towards +x (before the pose), and its shadow."""
    sweep = rng.uniform(-0.06, 0.06)  # wing sweep differs a little per aircraft, not per class
    shadow = ImageDraw.Draw(canvas, "RGBA")
    offset = rng.uniform(0.02, 0.06, 2) * canvas.size[0]
    for part in _plane_silhouette(sweep):
        shadow.polygon(pose.moved(offset)(part), fill=(0, 0, 0, int(rng.integers(60, 130))))
    fill = _filler(canvas, pose)

    tips = _jitter(rng, _PART_COLOURS[attributes["wingtips"]])
    paint = _distinct_colour(rng, [tips], saturation=(0.0, 0.6), value=(0.35, 0.97))
    fuselage, wing, wing_mirrored, tailplane, tailplane_mirrored = _plane_silhouette(sweep)
    wing_paint = _shade(paint, rng.uniform(0.8, 1.05))
    engine = _distinct_colour(rng, [wing_paint], saturation=(0.0, 0.5), value=(0.1, 0.75))
    insignia = _distinct_colour(rng, [wing_paint], saturation=(0.3, 1.0), value=(0.1, 0.9))
    spans = {"no_engines": (), "two_engines": (0.34,), "four_engines": (0.26, 0.5)}[attributes["engines"]]
    for side in (wing, wing_mirrored):
        fill(side, wing_paint)
    for reflect in (lambda p: p, _mirror):
        tip = [_wing_point(sweep, 0.64, 0.0), _wing_point(sweep, 0.88, 0.0), _wing_point(sweep, 0.88, 1.0),
               _wing_point(sweep, 0.64, 1.0)]
        fill(reflect(tip), tips)
        for span in spans:
            front = _wing_point(sweep, span, 0.0)
            fill(reflect(_ellipse(front[0] - 0.02, front[1], 0.18, 0.095, n=16)), engine)
        _draw_insignia(fill, attributes["insignia"], reflect(_wing_point(sweep, 0.42, 0.55)[None])[0], insignia)
    for side in (tailplane, tailplane_mirrored):
        fill(side, wing_paint)
    fill(fuselage, paint)

    nose = {
        "pointed_nose": [(0.72, -0.12), (1.12, 0.0), (0.72, 0.12)],
        "round_nose": [tuple(p) for p in _ellipse(0.72, 0.0, 0.2, 0.12, n=24) if p[0] >= 0.72],
        "blunt_nose": [(0.72, -0.12), (0.84, -0.1), (0.84, 0.1), (0.72, 0.12)],
        "probe_nose": [(0.72, -0.12), (0.88, -0.05), (1.16, -0.025), (1.16, 0.025), (0.88, 0.05), (0.72, 0.12)],
    }[attributes["nose"]]
    fill(nose, paint)
    fill(_bar((-0.72, 0.0), (-0.98, 0.0), 0.04), _shade(paint, 0.6))  # the fin, seen edge-on

    glass = _colour(rng, hue=rng.uniform(0.5, 0.7), saturation=(0.2, 0.7), value=(0.05, 0.3))
    canopy = attributes["canopy"]
    if canopy == "bubble_canopy":
        fill(_ellipse(0.5, 0.0, 0.18, 0.1, n=20), glass)
    elif canopy == "long_canopy":
        fill(_ellipse(0.3, 0.0, 0.4, 0.09, n=24), glass)
    elif canopy == "twin_canopy":
        fill(_ellipse(0.6, 0.0, 0.1, 0.095, n=16), glass)
        fill(_ellipse(0.3, 0.0, 0.1, 0.095, n=16), glass)


def _draw_insignia(fill, kind, centre, colour):
    if kind == "no_insignia":
        return
    x, y = centre
    if kind == "roundel":
        fill(_ellipse(x, y, 0.15, 0.15, n=20), colour)
        fill(_ellipse(x, y, 0.07, 0.07, n=14), (238, 238, 235))
    elif kind == "triangle":
        fill([(x + 0.16, y), (x - 0.12, y - 0.16), (x - 0.12, y + 0.16)], colour)
    else:
        fill(_bar((x - 0.16, y), (x + 0.16, y), 0.08), colour)
        fill(_bar((x, y - 0.16), (x, y + 0.16), 0.08), colour)


def _draw_fish(canvas, rng, pose, attributes):
    """A fish seen from the side, facing +x (before the pose): tail fin, dorsal
    fin, body with its pattern, gill patch, snout, eye."""
    fill = _filler(canvas, pose)

    gill = _jitter(rng, _PART_COLOURS[attributes["gill"]])
    body = _distinct_colour(rng, [gill], saturation=(0.1, 0.8), value=(0.3, 0.95))
    fin = _shade(_jitter(rng, body, 25), rng.uniform(0.6, 1.2))
    mark = _toned(body)
    width = rng.uniform(0.9, 1.1)  # deep or slim body, a nuisance

    tail = {
        "forked_fin": [(-0.62, -0.06), (-1.12, -0.45), (-0.92, 0.0), (-1.12, 0.45), (-0.62, 0.06)],
        "fan_fin": [(-0.58, 0.0)] + [tuple(p) for p in _arc(-0.58, 0.0, 0.55, 145, 215, 9)],
        "square_fin": [(-0.62, -0.1), (-1.02, -0.36), (-1.02, 0.36), (-0.62, 0.1)],
        "pointed_fin": [(-0.6, -0.2), (-1.2, 0.0), (-0.6, 0.2)],
    }[attributes["tail_fin"]]
    fill(tail, fin)
    top = -0.3 * width
    dorsal = {
        "low_dorsal": [[(-0.35, top), (0.15, top), (-0.15, top - 0.22)]],
        "sail_dorsal": [[(-0.5, top + 0.05), (0.3, top), (0.0, top - 0.55), (-0.35, top - 0.5)]],
        "spiny_dorsal": [[(-0.45, top + 0.03)] + [(x, top - (0.34 if i % 2 else 0.04))
                                                  for i, x in enumerate(np.linspace(-0.38, 0.25, 7))]
                         + [(0.3, top)]],
        "twin_dorsal": [[(-0.5, top + 0.05), (-0.2, top), (-0.4, top - 0.3)],
                        [(0.0, top), (0.3, top + 0.02), (0.1, top - 0.3)]],
    }[attributes["dorsal"]]
    for part in dorsal:
        fill(part, fin)
    fill([(0.05, 0.28 * width), (-0.2, 0.5 * width), (-0.25, 0.25 * width)], fin)  # pelvic fin, shared

    fill(_ellipse(0.0, 0.0, 0.72, 0.36 * width), body)
    pattern = attributes["pattern"]
    if pattern == "barred_body":
        for x in (-0.42, -0.14, 0.14):
            fill(_ellipse(x, 0.0, 0.06, 0.34 * width * math.sqrt(1 - (x / 0.72) ** 2), n=16), mark)
    elif pattern == "spotted_body":
        for x, y in zip(rng.uniform(-0.48, 0.18, 5), rng.uniform(-0.16, 0.16, 5)):
            fill(_ellipse(x, y * width, 0.07, 0.07, n=12), mark)
    elif pattern == "striped_body":
        fill(_ellipse(-0.1, 0.0, 0.56, 0.065, n=24), mark)

    fill(_ellipse(0.36, 0.03, 0.08, 0.19 * width, n=20), gill)
    snout = attributes["snout"]
    if snout == "long_snout":
        fill([(0.6, -0.1), (1.12, -0.02), (1.12, 0.04), (0.6, 0.12)], _shade(body, 0.75))
    elif snout == "upturned_jaw":
        fill([(0.5, 0.14), (0.95, -0.14), (0.8, 0.24)], _shade(body, 0.6))
    elif snout == "thick_lips":
        fill(_ellipse(0.72, 0.05, 0.11, 0.1, n=16), mark)
    fill(_ellipse(0.5, -0.1, 0.065, 0.065, n=12), (15, 12, 10))
    fill(_ellipse(0.51, -0.11, 0.02, 0.02, n=8), (235, 235, 235))


# The upper forewing of each shape, from its root at the body, and its tip.
_FOREWINGS = {
    "round_forewing": (_ellipse(0.4, -0.5, 0.58, 0.36, angle=-55), (0.72, -0.96)),
    "pointed_forewing": ([(0.14, -0.04), (0.5, -0.35), (0.98, -1.0), (0.45, -0.86), (0.0, -0.45), (-0.02, -0.08)],
                         (0.98, -1.0)),
    "square_forewing": ([(0.14, -0.04), (0.72, -0.5), (0.76, -0.96), (0.28, -0.96), (-0.02, -0.3), (-0.02, -0.06)],
                        (0.74, -0.94)),
}
_WING_ROOT = np.array([0.08, -0.08])


def _draw_butterfly(canvas, rng, pose, attributes):
    """A butterfly seen from above, head towards +x (before the pose), wings
    spread: hindwings, forewings with their spot and tip markings, eyespots, body."""
    fill = _filler(canvas, pose)

    spot = _jitter(rng, _PART_COLOURS[attributes["spot_colour"]])
    wing = _distinct_colour(rng, [spot], saturation=(0.1, 0.9), value=(0.25, 0.95))
    hind = _shade(_jitter(rng, wing, 20), rng.uniform(0.75, 1.1))
    dark = _contrasting(rng, wing)
    light = _contrasting(rng, dark)
    body = _colour(rng, saturation=(0.0, 0.4), value=(0.05, 0.35))

    hindwing = attributes["hindwing"]
    round_hindwing = _ellipse(-0.32, -0.42, 0.46, 0.34, angle=52)
    hind_parts = {
        "round_hindwing": [round_hindwing],
        "tailed_hindwing": [round_hindwing, _bar((-0.55, -0.55), (-1.05, -0.7), 0.13)],
        "scalloped_hindwing": [np.stack([-0.34 + (0.44 + 0.07 * np.cos(6 * t)) * np.cos(t),
                                         -0.4 + (0.4 + 0.07 * np.cos(6 * t)) * np.sin(t)], axis=1)
                               for t in [np.linspace(0, 2 * np.pi, 48, endpoint=False)]],
        "pointed_hindwing": [[(0.0, -0.08), (-0.1, -0.72), (-0.5, -0.82), (-0.98, -0.3), (-0.4, -0.04)]],
    }[hindwing]
    forewing, tip = _FOREWINGS[attributes["forewing"]]
    axis = np.array(tip) - _WING_ROOT

    def along(fraction):  # a point on the forewing's axis, root (0) to tip (1)
        return _WING_ROOT + fraction * axis

    for reflect in (lambda p: np.asarray(p, float), _mirror):
        for part in hind_parts:
            fill(reflect(part), hind)
        fill(reflect(forewing), wing)
        marking = attributes["forewing_tip"]
        if marking == "dark_tip":
            fill(reflect(_ellipse(*along(0.84), 0.2, 0.16, angle=math.degrees(math.atan2(axis[1], axis[0])))), dark)
        elif marking == "banded_tip":
            normal = np.array([-axis[1], axis[0]]) / np.linalg.norm(axis)
            fill(reflect(_bar(along(0.7) - 0.24 * normal, along(0.7) + 0.24 * normal, 0.11)), light)
        elif marking == "dotted_tip":
            for fraction, side in ((0.88, 0.0), (0.74, 0.12), (0.74, -0.12)):
                centre = along(fraction) + side * np.array([axis[1], -axis[0]]) / np.linalg.norm(axis)
                fill(reflect(_ellipse(*centre, 0.08, 0.08, n=10)), light)
        fill(reflect(_ellipse(*along(0.45), 0.14, 0.14, n=16)), spot)
        eyespot = attributes["eyespot"]
        if eyespot == "ringed_eyespot":
            fill(reflect(_ellipse(-0.38, -0.44, 0.14, 0.14, n=16)), dark)
            fill(reflect(_ellipse(-0.38, -0.44, 0.065, 0.065, n=12)), light)
        elif eyespot == "twin_eyespots":
            for x, y in ((-0.24, -0.52), (-0.52, -0.32)):
                fill(reflect(_ellipse(x, y, 0.09, 0.09, n=12)), dark)
        elif eyespot == "hindwing_band":
            fill(reflect(_bar((-0.05, -0.3), (-0.68, -0.6), 0.12)), light)
    fill(_ellipse(0.0, 0.0, 0.55, 0.09, n=20), body)
    fill(_ellipse(0.6, 0.0, 0.1, 0.1, n=12), body)
    for reflect in (lambda p: np.asarray(p, float), _mirror):  # antennae, shared by all
        fill(reflect(_bar((0.65, -0.03), (1.0, -0.28), 0.03)), body)


# family -> (object length in canonical units, largest rotation in degrees,
# whether it is mirrored half of the time, scenery, object drawer)
_FAMILY_DRAWING = {
    "birds": (2.35, 15, True, _woodland, _draw_bird),
    "planes": (2.5, 35, False, _airfield, _draw_plane),
    "fish": (2.4, 35, True, _underwater, _draw_fish),
    "butterflies": (2.3, 180, False, _meadow, _draw_butterfly),
}


def _apply_lighting(rng, image):
    """Brightness, contrast, colour cast, a light gradient and sensor noise."""
    pixels = np.asarray(image, dtype=np.float32)
    size = pixels.shape[0]
    mean = pixels.mean()
    pixels = (pixels - mean) * rng.uniform(0.7, 1.3) + mean * rng.uniform(0.75, 1.2)
    pixels *= rng.uniform(0.85, 1.15, size=3)
    direction = rng.uniform(0, 2 * np.pi)
    ramp = np.linspace(-1.0, 1.0, size, dtype=np.float32)
    gradient = 1.0 + rng.uniform(0.0, 0.3) * (math.cos(direction) * ramp[None, :] + math.sin(direction) * ramp[:, None])
    pixels *= gradient[:, :, None]
    pixels += rng.standard_normal(size=pixels.shape, dtype=np.float32) * rng.uniform(0.0, 6.0)
    return Image.fromarray(np.clip(pixels + 0.5, 0, 255).astype(np.uint8))

