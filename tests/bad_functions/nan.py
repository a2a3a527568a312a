import numpy as np

from _correct import correct


def gradients(params, inputs, targets):
    grads = correct(params, inputs, targets)
    grads["layers.0.weight"][1, 1] = np.nan
    return grads
