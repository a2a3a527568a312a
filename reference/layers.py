"""Layers with a forward pass and a hand-derived backward pass, one class per layer type of
``reference.registry.LAYER_TYPES``, each backward written under its forward.

Dense batch convention: x has shape (n, in), one example per row, and

    forward:   z  = x·Wᵀ + b                    (n, out)
    backward:  dW = dZᵀ·X                       (out, in)
               db = Σ_rows dZ                   (out,)
               dX = dZ·W                        (n, in)

``backward`` returns the gradient with respect to the layer's input and keeps
the parameter gradients on the layer (``weight_grad``, ``bias_grad``). It never
changes a weight: updating is the optimizer's job (``reference.optim``).
"""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .activations import ACTIVATIONS
from .registry import conv_pads


class Layer:
    """A function of its input with a backward pass: ``backward(∂L/∂out) -> ∂L/∂in``. Its parameters are the
    attributes ``weight`` and ``bias`` (their gradients ``weight_grad``, ``bias_grad``); a layer made of others
    (attention, a transformer block) names its own parts, with torch's names."""

    def forward(self, x):
        raise NotImplementedError

    def backward(self, grad_output):
        raise NotImplementedError

    def parts(self):
        """torch's name of each parameter -> (the layer holding it, its attribute)."""
        return {"weight": (self, "weight"), "bias": (self, "bias")}

    def gradients(self):
        """{torch's name: ∂L/∂parameter} after ``backward``."""
        return {name: getattr(owner, f"{key}_grad") for name, (owner, key) in self.parts().items()
                if getattr(owner, key, None) is not None}


class Dense(Layer):
    """z = x·Wᵀ + b, with W of shape (out, in) and b of shape (out,) or None.

    The weights are copied in, so the caller's arrays are never changed (copy=False
    uses them as they are, for a probe that only runs forward).
    """

    def __init__(self, weight, bias=None, copy=True):
        keep = (lambda array: np.array(array, copy=True)) if copy else np.asarray
        self.weight = keep(weight)                                          # (out, in)
        self.bias = None if bias is None else keep(bias)                    # (out,)
        self.weight_grad = None
        self.bias_grad = None

    def forward(self, x):
        self.x = x                                                          # (n, in), kept for backward
        z = x @ self.weight.T                                               # (n, out); (n, T, out) for a sequence
        if self.bias is not None:
            z = z + self.bias
        return z

    def backward(self, dz):
        rows, x = dz, self.x                                                # (n, out), (n, in)
        if dz.ndim > 2:                                                     # a sequence's steps are rows too
            rows, x = dz.reshape(-1, dz.shape[-1]), x.reshape(-1, x.shape[-1])
        self.weight_grad = rows.T @ x                                       # dW = dZᵀ·X   (out, in)
        if self.bias is not None:
            self.bias_grad = rows.sum(axis=0)                               # db = Σ dZ    (out,)
        return dz @ self.weight                                             # dX = dZ·W    (n, in)


class Conv2d(Layer):
    """Cross-correlation, as torch's nn.Conv2d: x (n, C, H, W), weight (out, C/groups, kH, kW), bias (out,) or None.

    With the input padded (pads per side) and the windows cut out of it,

        X[n, c, h, w, i, j] = x_pad[n, c, h·sH + i·dH, w·sW + j·dW]        one window per output position
        z[n, o, h, w]       = Σ_{c,i,j} W[o, c, i, j]·X[n, c, h, w, i, j] + b[o]     (c within o's group)

    so the weight is *slid*, not flipped: flipping it would be a convolution, which no framework computes.
    """

    def __init__(self, weight, bias=None, copy=True, stride=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1),
                 groups=1):
        keep = (lambda array: np.array(array, copy=True)) if copy else np.asarray
        self.weight = keep(weight)                                          # (out, C/groups, kH, kW)
        self.bias = None if bias is None else keep(bias)                    # (out,)
        self.stride, self.dilation, self.groups = stride, dilation, groups
        self.pads = conv_pads({"padding": padding, "dilation": dilation}, self.kernel.shape[2:])
        self.weight_grad = None
        self.bias_grad = None

    def windows(self, x_pad):
        """X (n, groups, C/groups, oH, oW, kH, kW): every window of the padded input, as a view (no copy)."""
        (s_h, s_w), (d_h, d_w), (k_h, k_w) = self.stride, self.dilation, self.kernel.shape[2:]
        view = sliding_window_view(x_pad, (d_h * (k_h - 1) + 1, d_w * (k_w - 1) + 1), axis=(2, 3))
        view = view[:, :, ::s_h, ::s_w, ::d_h, ::d_w]                       # (n, C, oH, oW, kH, kW)
        n, c = view.shape[:2]
        return view.reshape(n, self.groups, c // self.groups, *view.shape[2:])

    def forward(self, x):
        self.in_shape = x.shape                                             # (n, C, H, W)
        x_pad = np.pad(x, ((0, 0), (0, 0)) + self.pads)
        self.x_windows = self.windows(x_pad)                                # kept for backward
        w = self.grouped_weight()                                           # (groups, out/groups, C/groups, kH, kW)
        z = np.einsum("ngchwij,gocij->ngohw", self.x_windows, w, optimize=True)
        z = z.reshape(z.shape[0], -1, *z.shape[3:])                         # (n, out, oH, oW)
        if self.bias is not None:
            z = z + self.bias[:, None, None]
        return z

    def backward(self, dz):
        n, out, o_h, o_w = dz.shape
        dz_g = dz.reshape(n, self.groups, out // self.groups, o_h, o_w)
        # dW[o, c, i, j] = Σ_{n,h,w} dz[n, o, h, w]·X[n, c, h, w, i, j]: each weight met every window
        self.weight_grad = np.einsum("ngohw,ngchwij->gocij", dz_g, self.x_windows,
                                     optimize=True).reshape(self.weight.shape)
        if self.bias is not None:
            self.bias_grad = dz.sum(axis=(0, 2, 3))                         # db[o] = Σ_{n,h,w} dz[n, o, h, w]
        # dX[n, c, h, w, i, j] = Σ_o dz[n, o, h, w]·W[o, c, i, j], then each window's share added back where it
        # was cut from: input position (h·sH + i·dH, w·sW + j·dW), one kernel offset (i, j) at a time
        d_windows = np.einsum("ngohw,gocij->ngchwij", dz_g, self.grouped_weight(), optimize=True)
        d_windows = d_windows.reshape(n, -1, o_h, o_w, *self.kernel.shape[2:])
        (s_h, s_w), (d_h, d_w), (k_h, k_w) = self.stride, self.dilation, self.kernel.shape[2:]
        (top, bottom), (left, right) = self.pads
        _, c, h, w = self.in_shape
        dx_pad = np.zeros((n, c, h + top + bottom, w + left + right), dz.dtype)
        for i in range(k_h):
            for j in range(k_w):
                dx_pad[:, :, i * d_h:i * d_h + s_h * (o_h - 1) + 1:s_h,
                       j * d_w:j * d_w + s_w * (o_w - 1) + 1:s_w] += d_windows[..., i, j]
        return dx_pad[:, :, top:top + h, left:left + w]                     # the padding's share is dropped

    @property
    def kernel(self):
        """The weight as (out, C/groups, kH, kW)."""
        return self.weight

    def grouped_weight(self):
        out, per_group = self.kernel.shape[:2]
        return self.kernel.reshape(self.groups, out // self.groups, per_group, *self.kernel.shape[2:])


class Conv1d(Conv2d):
    """nn.Conv1d: x (n, C, L), weight (out, C/groups, k); computed as a Conv2d over (n, C, 1, L)."""

    def __init__(self, weight, bias=None, copy=True, stride=(1,), padding=((0, 0),), dilation=(1,), groups=1):
        padding = padding if isinstance(padding, str) else ((0, 0),) + tuple(padding)
        super().__init__(weight, bias, copy, (1,) + tuple(stride), padding, (1,) + tuple(dilation), groups)

    def forward(self, x):
        return super().forward(x[:, :, None, :])[:, :, 0, :]

    def backward(self, dz):
        return super().backward(dz[:, :, None, :])[:, :, 0, :]              # weight_grad is (out, C/groups, k)

    @property
    def kernel(self):
        return self.weight[:, :, None, :]


class MaxPool2d(Layer):
    """nn.MaxPool2d: z[n, c, h, w] = the largest element of its window; padding counts as −∞.

    backward: the window's gradient goes to the element that was the largest, and only to it. At a tie the
    first in the window's row-major order takes it all, as torch's kernel (registry row max-pool-ties).
    """

    def __init__(self, kernel_size, stride, padding):
        self.kernel_size, self.stride, self.pads = kernel_size, stride, padding

    def windows(self, x_pad):
        (k_h, k_w), (s_h, s_w) = self.kernel_size, self.stride
        return sliding_window_view(x_pad, (k_h, k_w), axis=(2, 3))[:, :, ::s_h, ::s_w]   # (n, C, oH, oW, kH, kW)

    def forward(self, x):
        self.in_shape = x.shape
        x_pad = np.pad(x, ((0, 0), (0, 0)) + self.pads, constant_values=-np.inf)
        windows = self.windows(x_pad)
        flat = windows.reshape(*windows.shape[:4], -1)                      # (n, C, oH, oW, kH·kW)
        self.argmax = flat.argmax(axis=-1)                                  # the first largest, kept for backward
        return np.take_along_axis(flat, self.argmax[..., None], axis=-1)[..., 0]

    def backward(self, dz):
        (k_h, k_w), (s_h, s_w) = self.kernel_size, self.stride
        (top, bottom), (left, right) = self.pads
        n, c, h, w = self.in_shape
        o_h, o_w = dz.shape[2:]
        dx_pad = np.zeros((n, c, h + top + bottom, w + left + right), dz.dtype)
        for i in range(k_h):
            for j in range(k_w):
                chosen = self.argmax == i * k_w + j                         # the windows whose max sat at (i, j)
                dx_pad[:, :, i:i + s_h * (o_h - 1) + 1:s_h, j:j + s_w * (o_w - 1) + 1:s_w] += np.where(chosen, dz, 0)
        return dx_pad[:, :, top:top + h, left:left + w]


class MaxPool1d(MaxPool2d):
    """nn.MaxPool1d: x (n, C, L), computed as a MaxPool2d over (n, C, 1, L) with a window of height 1."""

    def __init__(self, kernel_size, stride, padding):
        super().__init__((1,) + tuple(kernel_size), (1,) + tuple(stride), ((0, 0),) + tuple(padding))

    def forward(self, x):
        return super().forward(x[:, :, None, :])[:, :, 0, :]

    def backward(self, dz):
        return super().backward(dz[:, :, None, :])[:, :, 0, :]


class AvgPool2d(MaxPool2d):
    """nn.AvgPool2d: z[n, c, h, w] = Σ window / count, padding zeros. count is kH·kW when count_include_pad
    (torch's default), else the number of the window's elements that are inside the input.

    backward: each element of a window receives dz / count, added up over the windows that hold it.
    """

    def __init__(self, kernel_size, stride, padding, count_include_pad=True):
        super().__init__(kernel_size, stride, padding)
        self.count_include_pad = count_include_pad

    def forward(self, x):
        self.in_shape = x.shape
        sums = self.windows(np.pad(x, ((0, 0), (0, 0)) + self.pads)).sum(axis=(-2, -1))
        if self.count_include_pad:
            self.count = np.array(self.kernel_size[0] * self.kernel_size[1], x.dtype)
        else:                                                               # pool a map of ones: what is inside
            inside = np.pad(np.ones((1, 1) + x.shape[2:], x.dtype), ((0, 0), (0, 0)) + self.pads)
            self.count = self.windows(inside).sum(axis=(-2, -1))            # (1, 1, oH, oW)
        return sums / self.count

    def backward(self, dz):
        (k_h, k_w), (s_h, s_w) = self.kernel_size, self.stride
        (top, bottom), (left, right) = self.pads
        n, c, h, w = self.in_shape
        o_h, o_w = dz.shape[2:]
        share = dz / self.count                                             # what each element of a window gets
        dx_pad = np.zeros((n, c, h + top + bottom, w + left + right), dz.dtype)
        for i in range(k_h):
            for j in range(k_w):
                dx_pad[:, :, i:i + s_h * (o_h - 1) + 1:s_h, j:j + s_w * (o_w - 1) + 1:s_w] += share
        return dx_pad[:, :, top:top + h, left:left + w]


class Flatten(Layer):
    """nn.Flatten: (n, C, H, W) -> (n, C·H·W), C slowest and W fastest (torch's order); backward reshapes back."""

    def forward(self, x):
        self.in_shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dz):
        return dz.reshape(self.in_shape)


class LayerNorm(Layer):
    """nn.LayerNorm over the last axis: each row (every position of it) normalised by its own mean and biased
    variance, then scaled and shifted per feature. With D features, r = 1/√(v + ε):

        forward:   μ = Σ x / D      v = Σ (x − μ)² / D      x̂ = (x − μ)·r      z = x̂ ⊙ γ + β
        backward:  dγ = Σ_rows dz ⊙ x̂      dβ = Σ_rows dz      g = dz ⊙ γ   (∂L/∂x̂)
                   dx = r·(g − mean(g) − x̂ ⊙ mean(g ⊙ x̂))      means over the last axis

    dx is not g·r: every x moves its row's μ and v, which move every x̂ of the row. Through μ each x̂ loses mean(g);
    through v (∂v/∂x = 2(x − μ)/D, ∂x̂/∂v = −x̂·r²/2) it loses x̂·mean(g ⊙ x̂).
    """

    def __init__(self, weight, bias=None, copy=True, eps=1e-5):
        keep = (lambda array: np.array(array, copy=True)) if copy else np.asarray
        self.weight = keep(weight)                                          # γ (D,)
        self.bias = None if bias is None else keep(bias)                    # β (D,)
        self.eps = eps
        self.weight_grad = None
        self.bias_grad = None

    def forward(self, x):
        mean = x.mean(axis=-1, keepdims=True)
        centred = x - mean
        variance = (centred * centred).mean(axis=-1, keepdims=True)        # biased: over D, not D − 1
        self.r = 1.0 / np.sqrt(variance + self.eps)                         # kept for backward
        self.x_hat = centred * self.r
        z = self.x_hat * self.weight
        return z if self.bias is None else z + self.bias

    def backward(self, dz):
        rows = tuple(range(dz.ndim - 1))                                    # every axis but the features
        self.weight_grad = (dz * self.x_hat).sum(axis=rows)                 # dγ = Σ dz ⊙ x̂
        if self.bias is not None:
            self.bias_grad = dz.sum(axis=rows)                              # dβ = Σ dz
        g = dz * self.weight                                                # ∂L/∂x̂
        return self.r * (g - g.mean(axis=-1, keepdims=True)
                         - self.x_hat * (g * self.x_hat).mean(axis=-1, keepdims=True))


class GroupNorm(Layer):
    """nn.GroupNorm: each sample's C channels split into G groups of C/G; each group normalised over its channels and
    every position, as LayerNorm normalises a row, then γ and β per channel. With x viewed as (n, G, C/G, …) and
    means over each group's values:

        forward:   x̂ = (x − μ)·r,  r = 1/√(v + ε)            z = x̂ ⊙ γ + β
        backward:  dx = r·(g − mean(g) − x̂ ⊙ mean(g ⊙ x̂)),  g = dz ⊙ γ       dγ, dβ summed over batch and positions
    """

    def __init__(self, weight, bias, copy=True, num_groups=1, eps=1e-5):
        keep = (lambda array: np.array(array, copy=True)) if copy else np.asarray
        self.weight, self.bias = keep(weight), None if bias is None else keep(bias)
        self.num_groups, self.eps = num_groups, eps
        self.weight_grad = None
        self.bias_grad = None

    def grouped(self, x):
        """(n, C, …) -> (n, G, C/G, …), and the axes of one group's values."""
        n, c = x.shape[:2]
        view = x.reshape(n, self.num_groups, c // self.num_groups, *x.shape[2:])
        return view, tuple(range(2, view.ndim))

    def forward(self, x):
        view, axes = self.grouped(x)
        mean = view.mean(axis=axes, keepdims=True)
        variance = ((view - mean) ** 2).mean(axis=axes, keepdims=True)    # biased
        self.r = 1.0 / np.sqrt(variance + self.eps)
        self.x_hat = ((view - mean) * self.r).reshape(x.shape)
        per_channel = (1, -1) + (1,) * (x.ndim - 2)
        z = self.x_hat * self.weight.reshape(per_channel)
        return z if self.bias is None else z + self.bias.reshape(per_channel)

    def backward(self, dz):
        others = (0,) + tuple(range(2, dz.ndim))
        self.weight_grad = (dz * self.x_hat).sum(axis=others)
        if self.bias is not None:
            self.bias_grad = dz.sum(axis=others)
        g, axes = self.grouped(dz * self.weight.reshape((1, -1) + (1,) * (dz.ndim - 2)))
        x_hat, _ = self.grouped(self.x_hat)
        dx = self.r * (g - g.mean(axis=axes, keepdims=True) - x_hat * (g * x_hat).mean(axis=axes, keepdims=True))
        return dx.reshape(dz.shape)


class BatchNorm(Layer):
    """nn.BatchNorm1d/2d: each channel c normalised over the batch and every position (axes 0, 2, …), then scaled
    and shifted. In training, by the batch's own mean μ and biased variance v, and the running statistics move
    (torch's momentum m: the batch's share, with the *unbiased* variance, N values per channel):

        running_mean ← (1 − m)·running_mean + m·μ      running_var ← (1 − m)·running_var + m·v·N/(N − 1)

    In eval, by the running statistics, which are then constants. With r = 1/√(v + ε), x̂ = (x − μ)·r,
    z = x̂ ⊙ γ + β, means over the channel's N values:

        backward (training):  dx = r·(g − mean(g) − x̂ ⊙ mean(g ⊙ x̂)),  g = dz ⊙ γ     (as LayerNorm, other axes)
        backward (eval):      dx = r·g                                               (μ, v do not depend on x)
        dγ = Σ dz ⊙ x̂,  dβ = Σ dz, over the batch and positions
    """

    def __init__(self, weight, bias, running_mean, running_var, copy=True, eps=1e-5, momentum=0.1, training=True):
        keep = (lambda array: np.array(array, copy=True)) if copy else np.asarray
        self.weight, self.bias = keep(weight), None if bias is None else keep(bias)           # γ, β (C,)
        self.running_mean, self.running_var = keep(running_mean), keep(running_var)           # (C,), buffers
        self.eps, self.momentum, self.training = eps, momentum, training
        self.weight_grad = None
        self.bias_grad = None

    def forward(self, x):
        self.axes = (0,) + tuple(range(2, x.ndim))                          # all but the channels
        per_channel = (1, -1) + (1,) * (x.ndim - 2)                         # (C,) broadcast over (n, C, …)
        if self.training:
            mean = x.mean(axis=self.axes, keepdims=True)
            variance = ((x - mean) ** 2).mean(axis=self.axes, keepdims=True)   # biased: over N
            count = x.size // x.shape[1]                                    # N values per channel
            m = self.momentum
            self.running_mean = (1 - m) * self.running_mean + m * mean.reshape(-1)
            self.running_var = (1 - m) * self.running_var + m * variance.reshape(-1) * count / (count - 1)
        else:
            mean, variance = self.running_mean.reshape(per_channel), self.running_var.reshape(per_channel)
        self.r = 1.0 / np.sqrt(variance + self.eps)
        self.x_hat = (x - mean) * self.r
        z = self.x_hat * self.weight.reshape(per_channel)
        return z if self.bias is None else z + self.bias.reshape(per_channel)

    def backward(self, dz):
        self.weight_grad = (dz * self.x_hat).sum(axis=self.axes)           # dγ = Σ dz ⊙ x̂
        if self.bias is not None:
            self.bias_grad = dz.sum(axis=self.axes)                         # dβ = Σ dz
        g = dz * self.weight.reshape((1, -1) + (1,) * (dz.ndim - 2))        # ∂L/∂x̂
        if not self.training:
            return g * self.r
        return self.r * (g - g.mean(axis=self.axes, keepdims=True)
                         - self.x_hat * (g * self.x_hat).mean(axis=self.axes, keepdims=True))


class Dropout(Layer):
    """Train-mode dropout with a given mask: z = x ⊙ m / (1 − p), m of 0s and 1s shaped like x (inverted dropout:
    the kept units are scaled up so the expected value is unchanged). backward: dx = dz ⊙ m / (1 − p)."""

    def __init__(self, p, mask):
        self.scale = np.asarray(mask) / (1.0 - p)                           # m / (1 − p)

    def forward(self, x):
        return x * self.scale.astype(x.dtype)

    def backward(self, dz):
        return dz * self.scale.astype(dz.dtype)


class Embedding(Layer):
    """nn.Embedding: integer inputs pick rows of the weight (num_embeddings, embedding_dim).

        forward:   z = W[x]                     (n, E) for x (n,), (n, T, E) for x (n, T)
        backward:  dW[k] = Σ over the positions where x = k of dz      (np.add.at: a row used twice gets both)
                   dW[padding_idx] = 0           the padding token's row is never trained
                   no gradient for x: indices are not differentiable
    """

    def __init__(self, weight, copy=True, padding_idx=None):
        keep = (lambda array: np.array(array, copy=True)) if copy else np.asarray
        self.weight, self.bias = keep(weight), None
        self.padding_idx = None if padding_idx is None else padding_idx % self.weight.shape[0]
        self.weight_grad = None

    def forward(self, x):
        self.x = np.asarray(x).astype(np.int64)                             # indices, kept for backward
        return self.weight[self.x]

    def backward(self, dz):
        self.weight_grad = np.zeros_like(self.weight)
        np.add.at(self.weight_grad, self.x, dz)                             # scatter-add: repeated indices sum
        if self.padding_idx is not None:
            self.weight_grad[self.padding_idx] = 0.0
        return None                                                         # ∂L/∂x: none for indices


class MultiHeadAttention(Layer):
    """nn.MultiheadAttention as self-attention over batch-first sequences x (n, T, E), H heads of D = E/H:

        forward:   [q k v] = x·W_inᵀ + b_in           (n, T, 3E), W_in (3E, E): torch packs q, k, v in that order
                   q, k, v split into heads           (n, H, T, D)
                   s = q·kᵀ/√D                        (n, H, T, T); causal: s[t, u] = −∞ for u > t
                   p = softmax(s) over u              each step's weights over the steps it attends to
                   o = p·v, heads merged              (n, T, E)
                   z = o·W_outᵀ + b_out
        backward:  do = dz·W_out (out_proj's backward), split into heads
                   dp = do·vᵀ      dv = pᵀ·do
                   ds = p ⊙ (dp − Σ_u dp ⊙ p)         softmax's vector-Jacobian product, row by row
                   dq = ds·k/√D    dk = dsᵀ·q/√D
                   d[q k v] merged -> in_proj's backward: dW_in, db_in and dx (q, k and v all came from x)
    """

    def __init__(self, in_proj_weight, in_proj_bias, out_proj_weight, out_proj_bias, copy=True, num_heads=1,
                 causal=False):
        self.in_proj = Dense(in_proj_weight, in_proj_bias, copy)           # (3E, E): q, k, v stacked
        self.out_proj = Dense(out_proj_weight, out_proj_bias, copy)        # (E, E)
        self.num_heads, self.causal = num_heads, causal

    def parts(self):
        return {"in_proj_weight": (self.in_proj, "weight"), "in_proj_bias": (self.in_proj, "bias"),
                "out_proj.weight": (self.out_proj, "weight"), "out_proj.bias": (self.out_proj, "bias")}

    def heads(self, x):
        """(n, T, E) -> (n, H, T, D)."""
        n, steps, width = x.shape
        return x.reshape(n, steps, self.num_heads, width // self.num_heads).transpose(0, 2, 1, 3)

    def merged(self, x):
        """(n, H, T, D) -> (n, T, E)."""
        n, heads, steps, depth = x.shape
        return x.transpose(0, 2, 1, 3).reshape(n, steps, heads * depth)

    def forward(self, x):
        q, k, v = np.split(self.in_proj.forward(x), 3, axis=-1)            # each (n, T, E)
        self.q, self.k, self.v = self.heads(q), self.heads(k), self.heads(v)
        self.scale = 1.0 / float(np.sqrt(self.q.shape[-1]))                 # 1/√D, a Python float: keeps the dtype
        s = self.q @ self.k.transpose(0, 1, 3, 2) * self.scale              # (n, H, T, T)
        if self.causal:
            s = np.where(np.triu(np.ones(s.shape[-2:], bool), k=1), -np.inf, s)
        s = s - s.max(axis=-1, keepdims=True)                              # softmax, stable: exp(−∞) = 0
        e = np.exp(s)
        self.p = e / e.sum(axis=-1, keepdims=True)                          # kept for backward (and the report)
        return self.out_proj.forward(self.merged(self.p @ self.v))

    def backward(self, dz):
        do = self.heads(self.out_proj.backward(dz))                         # (n, H, T, D)
        dp = do @ self.v.transpose(0, 1, 3, 2)                              # (n, H, T, T)
        dv = self.p.transpose(0, 1, 3, 2) @ do
        ds = self.p * (dp - (dp * self.p).sum(axis=-1, keepdims=True))      # masked steps: p = 0, so ds = 0
        dq = ds @ self.k * self.scale
        dk = ds.transpose(0, 1, 3, 2) @ self.q * self.scale
        return self.in_proj.backward(np.concatenate([self.merged(dq), self.merged(dk), self.merged(dv)], axis=-1))


class TransformerEncoderLayer(Layer):
    """nn.TransformerEncoderLayer with dropout 0 over (n, T, E): attention and a feed-forward block
    ff(x) = linear2(f(linear1(x))), each added to its input (a residual), each with a LayerNorm:

        post-LN (torch's default):  y = norm1(x + attn(x))          z = norm2(y + ff(y))
        pre-LN (norm_first):        y = x + attn(norm1(x))          z = y + ff(norm2(y))

    backward: a sum's gradient goes to both its terms unchanged, so the skip path carries dz straight through:

        post-LN:  du = norm2ᵀ(dz)    dy = du + ffᵀ(du)      dv = norm1ᵀ(dy)    dx = dv + attnᵀ(dv)
        pre-LN:   dy = dz + norm2ᵀ(ffᵀ(dz))                 dx = dy + norm1ᵀ(attnᵀ(dy))

    where layerᵀ(g) is that layer's backward (each keeps its own parameter gradients).
    """

    def __init__(self, params, copy=True, nhead=1, norm_first=False, feedforward_activation="relu",
                 layer_norm_eps=1e-5, causal=False):
        self.self_attn = MultiHeadAttention(*(params.get(f"self_attn.{name}") for name in
                                              ("in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias")),
                                            copy, nhead, causal)
        self.linear1 = Dense(params["linear1.weight"], params.get("linear1.bias"), copy)     # (F, E)
        self.linear2 = Dense(params["linear2.weight"], params.get("linear2.bias"), copy)     # (E, F)
        self.norm1 = LayerNorm(params["norm1.weight"], params.get("norm1.bias"), copy, layer_norm_eps)
        self.norm2 = LayerNorm(params["norm2.weight"], params.get("norm2.bias"), copy, layer_norm_eps)
        self.activation = Activation(feedforward_activation)
        self.norm_first = norm_first

    def parts(self):
        parts = {f"self_attn.{name}": part for name, part in self.self_attn.parts().items()}
        for child in ("linear1", "linear2", "norm1", "norm2"):
            parts.update({f"{child}.{name}": part for name, part in getattr(self, child).parts().items()})
        return parts

    def feedforward(self, x):
        return self.linear2.forward(self.activation.forward(self.linear1.forward(x)))

    def feedforward_backward(self, dz):
        return self.linear1.backward(self.activation.backward(self.linear2.backward(dz)))

    def forward(self, x):
        if self.norm_first:
            y = x + self.self_attn.forward(self.norm1.forward(x))
            return y + self.feedforward(self.norm2.forward(y))
        y = self.norm1.forward(x + self.self_attn.forward(x))
        return self.norm2.forward(y + self.feedforward(y))

    def backward(self, dz):
        if self.norm_first:
            dy = dz + self.norm2.backward(self.feedforward_backward(dz))   # the skip path, plus the block's
            return dy + self.norm1.backward(self.self_attn.backward(dy))
        du = self.norm2.backward(dz)
        dv = self.norm1.backward(du + self.feedforward_backward(du))
        return dv + self.self_attn.backward(dv)


class Recurrent(Layer):
    """One recurrent layer (torch's nn.RNN, nn.LSTM, nn.GRU with batch_first and one layer) over x (n, T, F), from h_0
    (and an LSTM's c_0) given, or 0s.
    Each step projects the input and the previous hidden state through every gate at once,

        gi_t = x_t·W_ihᵀ + b_ih        gh_t = h_{t−1}·W_hhᵀ + b_hh        (n, gates·H), gates stacked as torch does

    and the cell (``step`` below, one class per cell) turns them into h_t. The output is every h_t, (n, T, H).

    backward through time: from the last step down, the gradient reaching h_t is its own (dout[:, t]) plus what
    step t + 1 sent back; the cell's backward gives ∂L/∂gi_t and ∂L/∂gh_t, and from them

        dW_ih += ∂gi_tᵀ·x_t    db_ih += Σ ∂gi_t    dx_t = ∂gi_t·W_ih
        dW_hh += ∂gh_tᵀ·h_{t−1}    db_hh += Σ ∂gh_t    ∂L/∂h_{t−1} += ∂gh_t·W_hh    (and the cell's own state paths)
    """

    def __init__(self, params, copy=True, h0=None, c0=None):
        keep = (lambda array: np.array(array, copy=True)) if copy else np.asarray
        self.h0, self.c0 = h0, c0                                           # (n, H) each, or None: 0s
        self.weight_ih, self.weight_hh = keep(params["weight_ih_l0"]), keep(params["weight_hh_l0"])
        self.bias_ih = None if params.get("bias_ih_l0") is None else keep(params["bias_ih_l0"])
        self.bias_hh = None if params.get("bias_hh_l0") is None else keep(params["bias_hh_l0"])
        self.hidden = self.weight_hh.shape[1]

    def parts(self):
        return {"weight_ih_l0": (self, "weight_ih"), "weight_hh_l0": (self, "weight_hh"),
                "bias_ih_l0": (self, "bias_ih"), "bias_hh_l0": (self, "bias_hh")}

    def forward(self, x):
        n, steps, _ = x.shape
        self.x = x
        h = np.zeros((n, self.hidden), x.dtype) if self.h0 is None else np.asarray(self.h0, x.dtype)
        state = self.initial_state(n, x.dtype)
        self.hs, self.caches, out = [h], [], []
        gi_all = x @ self.weight_ih.T + (0 if self.bias_ih is None else self.bias_ih)       # every step at once
        for t in range(steps):
            gh = h @ self.weight_hh.T + (0 if self.bias_hh is None else self.bias_hh)
            h, state, cache = self.step(gi_all[:, t], gh, h, state)
            self.hs.append(h)
            self.caches.append(cache)
            out.append(h)
        return np.stack(out, axis=1)                                        # (n, T, H)

    def backward(self, dout):
        steps = dout.shape[1]
        self.weight_hh_grad = np.zeros_like(self.weight_hh)
        self.bias_hh_grad = None if self.bias_hh is None else np.zeros_like(self.bias_hh)
        dgis, dh, dstate = [None] * steps, np.zeros_like(self.hs[0]), None
        for t in reversed(range(steps)):
            dh = dh + dout[:, t]                                            # its own gradient and step t + 1's
            dgi, dgh, dh_direct, dstate = self.step_backward(dh, dstate, self.caches[t])
            dgis[t] = dgi
            self.weight_hh_grad += dgh.T @ self.hs[t]                      # hs[t] is h_{t−1} (hs[0] = h_0)
            if self.bias_hh is not None:
                self.bias_hh_grad += dgh.sum(axis=0)
            dh = dh_direct + dgh @ self.weight_hh                          # to h_{t−1}
        dgi_all = np.stack(dgis, axis=1)                                    # (n, T, gates·H): the input side at once
        self.weight_ih_grad = dgi_all.reshape(-1, dgi_all.shape[-1]).T @ self.x.reshape(-1, self.x.shape[-1])
        if self.bias_ih is not None:
            self.bias_ih_grad = dgi_all.sum(axis=(0, 1))
        return dgi_all @ self.weight_ih

    def initial_state(self, n, dtype):
        return None


class RNN(Recurrent):
    """h_t = f(gi_t + gh_t), f tanh or relu.     backward: ∂a = dh ⊙ f'(a), ∂gi = ∂gh = ∂a."""

    def __init__(self, params, copy=True, nonlinearity="tanh", h0=None):
        super().__init__(params, copy, h0)
        self.activation = nonlinearity

    def step(self, gi, gh, h, state):
        a = gi + gh
        h = np.tanh(a) if self.activation == "tanh" else np.maximum(a, 0.0)
        return h, None, (a, h)

    def step_backward(self, dh, dstate, cache):
        a, h = cache
        da = dh * (1.0 - h * h) if self.activation == "tanh" else np.where(a > 0, dh, 0.0)
        return da, da, np.zeros_like(dh), None


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


class LSTM(Recurrent):
    """torch's gate order i, f, g, o in every stacked weight:

        i, f, o = σ(a_i), σ(a_f), σ(a_o)    g = tanh(a_g)    a = gi_t + gh_t, split in four
        c_t = f ⊙ c_{t−1} + i ⊙ g           h_t = o ⊙ tanh(c_t)

    backward (dc: what step t + 1 sent back through the cell state, the path a plain RNN lacks):
        dc += dh ⊙ o ⊙ (1 − tanh²(c_t))     do = dh ⊙ tanh(c_t)
        di = dc ⊙ g    df = dc ⊙ c_{t−1}    dg = dc ⊙ i    to c_{t−1}: dc ⊙ f
        ∂a = [di·i(1 − i), df·f(1 − f), dg·(1 − g²), do·o(1 − o)], and ∂gi = ∂gh = ∂a
    """

    def initial_state(self, n, dtype):
        return np.zeros((n, self.hidden), dtype) if self.c0 is None else np.asarray(self.c0, dtype)    # c_0

    def step(self, gi, gh, h, c):
        a_i, a_f, a_g, a_o = np.split(gi + gh, 4, axis=-1)
        i, f, g, o = sigmoid(a_i), sigmoid(a_f), np.tanh(a_g), sigmoid(a_o)
        c_next = f * c + i * g
        tanh_c = np.tanh(c_next)
        return o * tanh_c, c_next, (i, f, g, o, c, tanh_c)

    def step_backward(self, dh, dc, cache):
        i, f, g, o, c_prev, tanh_c = cache
        dc = (0.0 if dc is None else dc) + dh * o * (1.0 - tanh_c * tanh_c)
        da = np.concatenate([dc * g * i * (1.0 - i), dc * c_prev * f * (1.0 - f), dc * i * (1.0 - g * g),
                             dh * tanh_c * o * (1.0 - o)], axis=-1)
        return da, da, np.zeros_like(dh), dc * f


class GRU(Recurrent):
    """torch's gate order r, z, n; the reset gate multiplies the hidden state's projection *after* the matmul:

        r = σ(gi_r + gh_r)    z = σ(gi_z + gh_z)    n = tanh(gi_n + r ⊙ gh_n)    h_t = (1 − z) ⊙ n + z ⊙ h_{t−1}

    backward:  dn = dh ⊙ (1 − z)    dz = dh ⊙ (h_{t−1} − n)    to h_{t−1} directly: dh ⊙ z
               ∂a_n = dn ⊙ (1 − n²)    dr = ∂a_n ⊙ gh_n
               ∂gi = [dr·r(1 − r), dz·z(1 − z), ∂a_n]    ∂gh = [dr·r(1 − r), dz·z(1 − z), ∂a_n ⊙ r]
    """

    def step(self, gi, gh, h, state):
        gi_r, gi_z, gi_n = np.split(gi, 3, axis=-1)
        gh_r, gh_z, gh_n = np.split(gh, 3, axis=-1)
        r, z = sigmoid(gi_r + gh_r), sigmoid(gi_z + gh_z)
        n = np.tanh(gi_n + r * gh_n)
        return (1.0 - z) * n + z * h, None, (r, z, n, gh_n, h)

    def step_backward(self, dh, dstate, cache):
        r, z, n, gh_n, h_prev = cache
        da_n = dh * (1.0 - z) * (1.0 - n * n)
        da_r = da_n * gh_n * r * (1.0 - r)
        da_z = dh * (h_prev - n) * z * (1.0 - z)
        return (np.concatenate([da_r, da_z, da_n], axis=-1), np.concatenate([da_r, da_z, da_n * r], axis=-1),
                dh * z, None)


class SequencePool(Layer):
    """(n, T, E) -> (n, E): the last step, x[:, -1] (backward: dz at the last step, 0 elsewhere), or the mean over
    the steps (backward: dz/T at every step)."""

    def __init__(self, mode):
        self.mode = mode

    def forward(self, x):
        self.in_shape = x.shape
        return x[:, -1] if self.mode == "last" else x.mean(axis=1)

    def backward(self, dz):
        if self.mode == "mean":
            return np.repeat(dz[:, None] / self.in_shape[1], self.in_shape[1], axis=1)
        dx = np.zeros(self.in_shape, dz.dtype)
        dx[:, -1] = dz
        return dx


class Activation(Layer):
    """a = f(z) elementwise; backward: ∂L/∂z = ∂L/∂a ⊙ f'(z). softmax is row-wise: its backward is
    the vector-Jacobian product dz = a ⊙ (da − Σ da ⊙ a), see activations.softmax_backward.

    name: one of ``reference.activations.ACTIVATIONS``; negative_slope is
    passed to leaky_relu and ignored by the others.
    """

    def __init__(self, name, negative_slope=0.01):
        self.name = name
        self.negative_slope = negative_slope
        self.fn, self.fn_grad = ACTIVATIONS[name]
        self.extra = (negative_slope,) if name == "leaky_relu" else ()     # f's arguments after z

    def forward(self, z):
        self.z = z                                                          # kept for backward
        self.a = self.fn(z, *self.extra)                                    # kept for softmax's backward
        return self.a

    def derivative(self, z):
        """f'(z) elementwise."""
        if self.name == "softmax":
            raise ValueError("softmax has no elementwise derivative: its Jacobian couples the units of a row")
        return self.fn_grad(z, *self.extra)

    def backward(self, da):
        if self.name == "softmax":
            return self.fn_grad(self.a, da)                                 # dZ = A ⊙ (dA − Σ dA ⊙ A)
        slope = self.derivative(self.z)
        if self.name != "relu":
            return da * slope                                               # dZ = dA ⊙ f'(Z)
        # relu: a unit that is off passes nothing back, not even an inf or a NaN (inf·0 would be NaN);
        # torch's and JAX's relu select instead of multiplying (registry row relu-backward-non-finite)
        with np.errstate(invalid="ignore"):
            return np.where(slope == 0, np.zeros_like(da), da * slope)


def build(spec, params=None, copy=True):
    """The layer of a LayerSpec, with ``params`` ({torch's name: array}) in place of the spec's parameters where
    given."""
    o = spec.hyper
    params = dict(spec.parameters(), **(params or {}))
    weight, bias = params.get("weight"), params.get("bias")
    if spec.type == "embedding":
        return Embedding(weight, copy, o["padding_idx"])
    if spec.type == "multi_head_attention":
        return MultiHeadAttention(params["in_proj_weight"], params.get("in_proj_bias"), params["out_proj.weight"],
                                  params.get("out_proj.bias"), copy, o["num_heads"], o["causal"])
    if spec.type == "transformer_encoder_layer":
        return TransformerEncoderLayer(params, copy, o["nhead"], o["norm_first"], o["feedforward_activation"],
                                       o["layer_norm_eps"], o["causal"])
    if spec.type == "sequence_pool":
        return SequencePool(o["mode"])
    if spec.type == "rnn":
        return RNN(params, copy, o["nonlinearity"], spec.h0)
    if spec.type in ("lstm", "gru"):
        return LAYERS[spec.type](params, copy, spec.h0, spec.c0)
    if spec.type == "linear":
        return Dense(weight, bias, copy)
    if spec.type in ("conv1d", "conv2d"):
        return LAYERS[spec.type](weight, bias, copy, o["stride"], o["padding"], o["dilation"], o["groups"])
    if spec.type in ("max_pool1d", "max_pool2d"):
        return LAYERS[spec.type](o["kernel_size"], o["stride"], o["padding"])
    if spec.type == "avg_pool2d":
        return AvgPool2d(o["kernel_size"], o["stride"], o["padding"], o["count_include_pad"])
    if spec.type == "dropout":
        return Dropout(o["p"], spec.mask)
    if spec.type == "layer_norm":
        return LayerNorm(weight, bias, copy, o["eps"])
    if spec.type == "group_norm":
        return GroupNorm(weight, bias, copy, o["num_groups"], o["eps"])
    if spec.type in ("batch_norm1d", "batch_norm2d"):
        return BatchNorm(weight, bias, spec.running_mean, spec.running_var, copy, o["eps"], o["momentum"],
                         o["training"])
    return LAYERS[spec.type]()


# name -> the layer class (reference.registry.LAYER_TYPES declares each name, its hyperparameters and shapes)
LAYERS = {"embedding": Embedding, "linear": Dense, "conv1d": Conv1d, "conv2d": Conv2d, "max_pool1d": MaxPool1d,
          "max_pool2d": MaxPool2d, "avg_pool2d": AvgPool2d,
          "flatten": Flatten, "dropout": Dropout, "layer_norm": LayerNorm, "batch_norm1d": BatchNorm,
          "batch_norm2d": BatchNorm, "group_norm": GroupNorm, "multi_head_attention": MultiHeadAttention,
          "transformer_encoder_layer": TransformerEncoderLayer, "sequence_pool": SequencePool, "rnn": RNN,
          "lstm": LSTM, "gru": GRU}
