"""Losses over a batch and their hand-derived gradients.

Y (outputs) and T (targets) both have shape (n, out). Each loss returns a
0-d array in Y's dtype, and each ``*_grad`` returns ∂L/∂Y with Y's shape.
How a loss reduces over the batch matters: it scales every gradient.

    sse      = Σ (Y − T)²            summed over rows and outputs
    half_sse = ½ · Σ (Y − T)²        the ½ cancels the 2 of the derivative
    mse      = Σ (Y − T)² / (n·out)  mean over all elements, as torch's MSELoss
"""


def sse(y, t):
    """L = Σ (y − t)²"""
    return ((y - t) ** 2).sum()


def sse_grad(y, t):
    """∂L/∂y = 2·(y − t)"""
    return 2.0 * (y - t)


def half_sse(y, t):
    """L = ½·Σ (y − t)²"""
    return 0.5 * ((y - t) ** 2).sum()


def half_sse_grad(y, t):
    """∂L/∂y = y − t"""
    return y - t


def mse(y, t):
    """L = Σ (y − t)² / N, with N = n·out, the number of elements"""
    return ((y - t) ** 2).sum() / y.size


def mse_grad(y, t):
    """∂L/∂y = 2·(y − t) / N"""
    return 2.0 * (y - t) / y.size


# name -> (L, ∂L/∂y)
LOSSES = {
    "sse": (sse, sse_grad),
    "half_sse": (half_sse, half_sse_grad),
    "mse": (mse, mse_grad),
}
