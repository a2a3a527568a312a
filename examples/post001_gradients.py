"""Post 001's analytic gradients, written as a reader would, for `backproof verify`.

The network is grokking-3-4-1: h = relu(W0·x), y = W1·h, E = Σ (y − t)² over the
rows. For one row, the chain rule gives

    ∂E/∂W1 = 2(y − t) · hᵀ
    ∂E/∂W0 = 2(y − t) · (relu'(z) ⊙ W1ᵀ) · xᵀ

and the batch gradient is the sum over rows. Try it:

    backproof verify examples/post001_gradients.py:gradients grokking-3-4-1
    backproof verify examples/post001_gradients.py:gradients_relu_slope_one grokking-3-4-1
"""

import numpy as np


def gradients(params, inputs, targets):
    W0, W1 = params["layers.0.weight"], params["layers.1.weight"]     # (4, 3), (1, 4)
    dW0, dW1 = np.zeros_like(W0), np.zeros_like(W1)
    for x, t in zip(inputs, targets):
        z = W0 @ x                            # (4,)
        h = np.maximum(z, 0.0)
        y = W1 @ h                            # (1,)
        prefactor = 2.0 * (y - t)             # ∂E/∂y
        dW1 += prefactor[:, None] * h[None, :]
        dW0 += prefactor * np.outer((z > 0) * W1[0], x)
    return {"layers.0.weight": dW0, "layers.1.weight": dW1}


def gradients_relu_slope_one(params, inputs, targets):
    """The same, with a classic slip: relu'(z) taken as 1 everywhere, as if the unit were linear."""
    W0, W1 = params["layers.0.weight"], params["layers.1.weight"]
    dW0, dW1 = np.zeros_like(W0), np.zeros_like(W1)
    for x, t in zip(inputs, targets):
        z = W0 @ x
        h = np.maximum(z, 0.0)
        y = W1 @ h
        prefactor = 2.0 * (y - t)
        dW1 += prefactor[:, None] * h[None, :]
        dW0 += prefactor * np.outer(W1[0], x)        # wrong: should be (z > 0) * W1[0]
    return {"layers.0.weight": dW0, "layers.1.weight": dW1}
