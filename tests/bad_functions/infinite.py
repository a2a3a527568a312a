import numpy as np

from _correct import correct


def gradients(params, inputs, targets):
    grads = correct(params, inputs, targets)
    grads["layers.1.weight"][0, 2] = np.inf
    return grads
