"""Finite differences: the gradient oracle that needs no calculus.

Three tools, all NumPy, all on copies (the caller's arrays are never touched,
even when the loss function raises midway):

    central_differences    every coordinate: 2 loss evaluations per parameter element
    directional_derivatives  random unit directions v: 2 evaluations per direction,
                             compared with <∇L, v>; how jax.test_util.check_grads scales
    epsilon_sweep          the error for step sizes 1e-1 … 1e-12: truncation error
                             falls as ε², round-off grows as 1/ε, so the curve is a V

``loss`` is always a function of a params dict (canonical names -> arrays)
returning a scalar. This module only computes; deciding what error is
acceptable is the harness's job (backproof.compare.TOLERANCES).
"""

import numpy as np

# The default step ε per dtype: the bottom of the ε sweep's V over the built-in scenarios (`make calibrate`
# re-measures it; the figures are in docs/evidence.md). Below it round-off dominates, above it truncation.
DEFAULT_DELTA = {"float64": 1e-5, "float32": 1e-2}

SWEEP_DELTAS = tuple(10.0 ** -k for k in range(1, 13))     # 1e-1 … 1e-12


def default_delta(dtype):
    return DEFAULT_DELTA[np.dtype(dtype).name]


def central_differences(loss, params, delta=None):
    """∂L/∂p ≈ (L(p + ε) − L(p − ε)) / (p₊ − p₋) for every element of every parameter.

    Returns a dict shaped like ``params``. Costs two loss evaluations per element.
    """
    coordinates = [(name, index) for name, value in params.items() for index in np.ndindex(np.shape(value))]
    values = iter(coordinate_differences(loss, params, coordinates, delta))
    return {name: np.array([next(values) for _ in np.ndindex(np.shape(value))],
                           dtype=np.asarray(value).dtype).reshape(np.shape(value))
            for name, value in params.items()}


def coordinate_differences(loss, params, coordinates, delta=None):
    """Central differences at the given (name, index) coordinates only; a float64 array.

    The denominator is the step actually taken in the parameter's dtype, which in
    float32 is not exactly 2ε; a step that rounds away entirely gives NaN, never a
    made-up 0. One copy of the parameters is probed and restored after each coordinate.
    """
    probe = {name: np.array(value, copy=True) for name, value in params.items()}
    values = np.empty(len(coordinates))
    for k, (name, index) in enumerate(coordinates):
        array = probe[name]
        original = array[index]
        delta_here = default_delta(array.dtype) if delta is None else delta
        array[index] = original + delta_here
        up_at, up = float(array[index]), float(loss(probe))
        array[index] = original - delta_here
        down_at, down = float(array[index]), float(loss(probe))
        array[index] = original
        step = up_at - down_at
        values[k] = (up - down) / step if step else np.nan
    return values


def random_directions(params, count, seed=0):
    """``count`` random unit directions over all of ``params`` at once: a (count, N) float64 array.

    Each entry is ±1/√N with a random sign (random bits from ``numpy.random.default_rng(seed)``),
    so every direction has unit norm and touches every element. Drawn in one call: N is the total
    number of parameter elements, in the order of ``params``.
    """
    total = sum(int(np.size(value)) for value in params.values())
    bits = np.random.default_rng(seed).integers(0, 256, size=(count, (total + 7) // 8), dtype=np.uint8)
    directions = np.unpackbits(bits, axis=1, count=total).astype(np.float64)     # 0 or 1, eight per byte
    directions *= 2.0 / np.sqrt(total)
    directions -= 1.0 / np.sqrt(total)
    return directions


def flatten(params):
    """All parameters as one float64 vector, in the order of ``params``."""
    return np.concatenate([np.asarray(value, np.float64).ravel() for value in params.values()])


def unflatten(vector, params, dtype):
    """The vector cut back into arrays shaped like ``params`` (views when the dtype allows)."""
    vector = vector.astype(dtype, copy=False)
    out, start = {}, 0
    for name, value in params.items():
        size = int(np.size(value))
        out[name] = vector[start:start + size].reshape(np.shape(value))
        start += size
    return out


def inner(grads, direction):
    """<g, v> summed over every parameter, in float64 (direction: a flat vector in the order of grads)."""
    return float(flatten(grads) @ direction)


def directional_derivatives(loss, grads, params, directions, delta=None):
    """For each direction v (a row of ``directions``): (numeric, analytic) directional derivatives.

    numeric  = (L(θ + εv) − L(θ − εv)) / 2ε, the perturbed θ rounded to the params' dtype
    analytic = <g, (θ₊ − θ₋) / 2ε>, the same rounded step, so that rounding the probe
               points in float32 does not count as a gradient error
    Returns two float64 arrays of len(directions). Two loss evaluations per direction, and
    no copy of the parameters beyond the two probe points.
    """
    dtype = next(iter(params.values())).dtype
    delta = default_delta(dtype) if delta is None else delta
    theta, g = flatten(params), flatten(grads)
    numeric, analytic = [], []
    for v in directions:
        dv = delta * v
        plus = (theta + dv).astype(dtype, copy=False)
        minus = (theta - dv).astype(dtype, copy=False)
        step = plus.astype(np.float64, copy=False) - minus.astype(np.float64, copy=False)
        if not step.any():
            numeric.append(np.nan)          # the step rounded away entirely: nothing was measured
        else:
            numeric.append((float(loss(unflatten(plus, params, dtype)))
                            - float(loss(unflatten(minus, params, dtype)))) / (2 * delta))
        analytic.append(float(g @ step) / (2 * delta))
    return np.array(numeric), np.array(analytic)


def relative_error(numeric, analytic):
    """max |numeric − analytic| / max(|numeric|, |analytic|) over the elements (0 where both are 0).

    A NaN (a step that rounded away) counts as an infinite error.
    """
    numeric, analytic = np.asarray(numeric, np.float64), np.asarray(analytic, np.float64)
    if not np.all(np.isfinite(numeric) & np.isfinite(analytic)):
        return float("inf")
    scale = np.maximum(np.abs(numeric), np.abs(analytic))
    error = np.abs(numeric - analytic)
    return float(np.max(np.divide(error, scale, out=np.zeros_like(error), where=scale > 0), initial=0.0))


def epsilon_sweep(loss, grads, params, deltas=SWEEP_DELTAS, directions=None, count=4, seed=0):
    """[(ε, relative error)] of the directional check at each ε, for the same directions.

    The curve is V-shaped: truncation error (∝ ε²) dominates at large ε, round-off
    (∝ unit round-off · |L| / ε) at small ε. The best ε is at the bottom of the V.
    """
    directions = random_directions(params, count, seed) if directions is None else directions
    return [(delta, relative_error(*directional_derivatives(loss, grads, params, directions, delta)))
            for delta in deltas]


def best_delta(sweep):
    """The ε of a sweep with the smallest error."""
    return min(sweep, key=lambda point: point[1])[0]
