"""Post 001's two training runs, re-enacted to prove its aliasing erratum.

The post trains once with finite-difference gradients, then "sets the weights
back to their initial values" and trains again with analytic gradients. But its
``weights_0_1_init = weights_0_1`` binds a second name to the same array, and
the in-place ``weights_0_1 -= alpha*derivs`` then trains the "initial" weights
too. The second run starts where the first ended, which is why it looks better.

``procedure(scenario, copy_init)`` runs both halves with the mechanism intact:
in-place updates, and ``init`` either aliased (the post) or copied (the fix).
Like the post, it measures each step's error *after* that step's update.
"""

import numpy as np

from reference.gradcheck import central_differences
from reference.network import loss_and_gradients, loss_of


def _run(scenario, weights, gradients, epochs, delta):
    """Per-sample SGD that updates ``weights`` in place, as the post does; returns the epoch errors."""
    curve = []
    for _ in range(epochs):
        error = 0.0
        for row in range(scenario.inputs.shape[0]):
            x, t = scenario.inputs[row:row + 1], scenario.targets[row:row + 1]
            if gradients == "finite_difference":
                derivs = central_differences(loss_of(scenario, x, t), weights, delta)
            else:
                derivs = loss_and_gradients(scenario, weights, x, t)[1]
            for name in weights:
                weights[name] -= scenario.lr * derivs[name]       # in place, like `weights_0_1 -= ...`
            error += float(loss_of(scenario, x, t)(weights))
        curve.append(error / scenario.inputs.shape[0])
    return np.array(curve)


def procedure(scenario, copy_init, epochs=None, delta=1e-4):
    """(finite-difference curve, analytic curve) of the post's procedure.

    copy_init=False keeps the post's aliasing; True makes the reset real.
    """
    epochs, _ = scenario.schedule(epochs)
    weights = {name: np.array(value, copy=True) for name, value in scenario.parameters().items()}
    if copy_init:
        init = {name: value.copy() for name, value in weights.items()}
    else:
        init = weights                                            # the post's `*_init = weights`: an alias
    first = _run(scenario, weights, "finite_difference", epochs, delta)
    weights = init                                                # "we set the weights back to their initial values"
    second = _run(scenario, weights, "analytic", epochs, delta)
    return first, second
