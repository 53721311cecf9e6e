"""Entropic optimal transport as the OTDD's original computes it: GeomLoss's
log-domain Sinkhorn with ε-scaling (Feydy et al., AISTATS 2019), in NumPy.

    eps = epsilon_schedule(diameter, blur)
    f, g = potentials(cost, a_log, b_log, eps)     # batched: cost (..., n, m)
    value = entropic_ot(cost, a_log, b_log, eps)   # <a, f> + <b, g>

GeomLoss does not iterate to convergence: it takes one symmetric update of
both potentials per ε, from the squared diameter of the point clouds down to
blur², then one last "extrapolation" step. `potentials` takes the same steps,
so its values equal GeomLoss's (to float rounding), which is what
microsoft/otdd reports; the converged entropic OT differs from them (see
`fgtf.transfer.transferability.otdd`).

Weights are given as logarithms so that batches of point clouds of different
sizes can be padded: a padded point has log-weight -inf and takes no mass.
"""
import numpy as np


def epsilon_schedule(diameter, blur, scaling=0.5):
    """The temperatures of GeomLoss's ε-scaling for the squared Euclidean
    cost (p = 2): diameter², then diameter² · scaling^(2k) for k = 0, 1, ...
    while above blur², then blur². `diameter` may be an array, one problem
    of a batch each, when their schedules have the same length (see
    `schedule_length`): each temperature is then an array."""
    diameter = np.asarray(diameter, dtype=np.float64)
    lengths = np.unique(schedule_length(diameter, blur, scaling))
    if len(lengths) != 1:
        raise ValueError(f"the diameters give schedules of different lengths {lengths.tolist()}; batch them apart")
    top = diameter ** 2
    return [top] + [top * scaling ** (2 * k) for k in range(int(lengths[0]) - 2)] + [np.full_like(top, blur ** 2)]


def schedule_length(diameter, blur, scaling=0.5):
    """len(epsilon_schedule(diameter, blur, scaling)) for each diameter: as
    GeomLoss's np.arange(2 log diameter, 2 log blur, 2 log scaling), plus the
    first and last temperatures."""
    steps = np.ceil((2 * np.log(blur) - 2 * np.log(diameter)) / (2 * np.log(scaling)))
    return 2 + np.maximum(steps, 0).astype(int)


def bounding_box_diameter(points_min, points_max):
    """Diagonal of the bounding box with corners `points_min`, `points_max`
    (..., D): GeomLoss's default diameter of a transport problem."""
    return np.sqrt(np.sum((points_max - points_min) ** 2, axis=-1))


def potentials(cost, a_log, b_log, eps):
    """The dual potentials (f on the rows, g on the columns) of the entropic
    transport between weights exp(a_log) (..., n) and exp(b_log) (..., m)
    for `cost` (..., n, m), following GeomLoss's `sinkhorn_loop`, in the
    precision of `cost`.

    `eps`: the schedule, a list of temperatures, each a float or an array
    of the batch shape (...,)."""
    a_log, b_log = a_log.astype(cost.dtype), b_log.astype(cost.dtype)
    temperature, ratio = _scaled(cost, eps[0])
    f = _softmin(temperature, ratio, b_log, axis=-1)
    g = _softmin(temperature, ratio, a_log, axis=-2)
    for value in eps:
        temperature, ratio = _scaled(cost, value)
        f_next = _softmin(temperature, ratio, b_log + g / temperature, axis=-1)
        g_next = _softmin(temperature, ratio, a_log + f / temperature, axis=-2)
        f, g = 0.5 * (f + f_next), 0.5 * (g + g_next)
    return (_softmin(temperature, ratio, b_log + g / temperature, axis=-1),
            _softmin(temperature, ratio, a_log + f / temperature, axis=-2))


def entropic_ot(cost, a_log, b_log, eps):
    """OT_ε(a, b) = <a, f> + <b, g> at the potentials of `potentials` (the
    non-debiased Sinkhorn loss). Returns a float or an array of the batch shape."""
    f, g = potentials(cost, a_log, b_log, eps)
    return _dot(a_log, f) + _dot(b_log, g)


def sinkhorn_divergence(cost_ab, cost_aa, cost_bb, a_log, b_log, eps):
    """The debiased Sinkhorn divergence OT_ε(a, b) − OT_ε(a, a)/2 − OT_ε(b, b)/2
    (GeomLoss's `debias=True`), each term with the schedule `eps`."""
    return (entropic_ot(cost_ab, a_log, b_log, eps) - 0.5 * entropic_ot(cost_aa, a_log, a_log, eps)
            - 0.5 * entropic_ot(cost_bb, b_log, b_log, eps))


def _scaled(cost, temperature):
    """(ε as (..., 1), C / ε) for a temperature or a batch of them (...,)."""
    temperature = np.asarray(temperature, dtype=cost.dtype)[..., None]
    return temperature, cost / temperature[..., None]


def _softmin(temperature, ratio, h, axis):
    """-ε log Σ exp(h - C/ε) over the columns (axis -1, h on the columns) or
    the rows (axis -2, h on the rows) of `ratio` = C/ε (..., n, m), batched."""
    scaled = (h[..., None, :] if axis == -1 else h[..., :, None]) - ratio
    top = np.max(scaled, axis=axis, keepdims=True)
    scaled -= top
    np.exp(scaled, out=scaled)
    return -temperature * (np.log(scaled.sum(axis=axis)) + np.squeeze(top, axis=axis))


def _dot(log_weights, potential):
    weighted = np.where(np.isneginf(log_weights), 0.0, np.exp(log_weights.astype(np.float64)) * potential)
    return np.sum(weighted, axis=-1)
