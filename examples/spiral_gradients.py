"""Softmax cross-entropy gradients by hand, for `backproof verify` on a classifier.

The network is spiral-2-16-3-adam: h = relu(x·W0ᵀ + b0), y = h·W1ᵀ + b1 (logits),
p = softmax(y) row by row, E = −(1/n)·Σ_r log p[r, class_r]. The targets arrive as
one-hot rows T (n, 3), so E = −(1/n)·Σ T ⊙ log p, and the chain rule gives

    ∂E/∂y  = (p − T) / n                     softmax and the log cancel into one line
    ∂E/∂W1 = (∂E/∂y)ᵀ·h,   ∂E/∂b1 = Σ_rows ∂E/∂y
    ∂E/∂h  = (∂E/∂y)·W1,   ∂E/∂z0 = ∂E/∂h ⊙ [z0 > 0]
    ∂E/∂W0 = (∂E/∂z0)ᵀ·x,  ∂E/∂b0 = Σ_rows ∂E/∂z0

Try it:

    backproof verify examples/spiral_gradients.py:gradients spiral-2-16-3-adam
    backproof verify examples/spiral_gradients.py:gradients_summed spiral-2-16-3-adam
"""

import numpy as np


def gradients(params, inputs, targets, average=True):
    W0, b0 = params["layers.0.weight"], params["layers.0.bias"]        # (16, 2), (16,)
    W1, b1 = params["layers.1.weight"], params["layers.1.bias"]        # (3, 16), (3,)
    z0 = inputs @ W0.T + b0
    h = np.maximum(z0, 0.0)
    y = h @ W1.T + b1                                                  # logits (n, 3)
    e = np.exp(y - y.max(axis=1, keepdims=True))
    p = e / e.sum(axis=1, keepdims=True)
    dy = (p - targets) / (len(inputs) if average else 1)
    dz0 = (dy @ W1) * (z0 > 0)
    return {"layers.0.weight": dz0.T @ inputs, "layers.0.bias": dz0.sum(axis=0),
            "layers.1.weight": dy.T @ h, "layers.1.bias": dy.sum(axis=0)}


def gradients_summed(params, inputs, targets):
    """The same with a classic slip: the loss summed over the rows, not averaged (torch's F.cross_entropy
    and this scenario take the mean), so every gradient is n = 60 times too large."""
    return gradients(params, inputs, targets, average=False)
