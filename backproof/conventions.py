"""Where the frameworks' building blocks legitimately disagree: a registry, measured.

Each row documents one value per framework and the reference's choice. Every
documented value is also *measured* by calling the real framework function
(``probe``), and tests/test_conventions.py asserts the two are equal, so a
framework release that changes behaviour fails a test that names the row.
"""

import functools
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Convention:
    id: str
    what: str
    values: dict                 # framework -> documented value (numbers, or short strings)
    reference: str               # the NumPy reference's choice, and why
    probes: dict = field(default_factory=dict, compare=False)   # framework -> zero-argument callable

    def __post_init__(self):
        """probes may be one function of the label, probe(label): then every documented label is measured by it."""
        if callable(self.probes):
            object.__setattr__(self, "probes", {label: functools.partial(self.probes, label) for label in self.values})


# --- probes: each calls the real framework and returns the value the row documents ---------

def _torch_grad_at_zero(fn):
    import torch
    x = torch.zeros((), dtype=torch.float64, requires_grad=True)
    fn(x).backward()
    return float(x.grad)


def _jax_grad_at_zero(fn):
    import jax
    with jax.enable_x64(True):
        return float(jax.grad(fn)(0.0))


def _numpy_grad_at_zero(grad_fn, *args):
    import numpy as np
    return float(grad_fn(np.zeros(1), *args)[0])


def _torch(name):
    import torch
    import torch.nn.functional as F
    return {
        "F.relu": F.relu,
        "torch.maximum": lambda x: torch.maximum(x, torch.zeros_like(x)),
        "clamp_min": lambda x: x.clamp_min(0.0),
        "F.leaky_relu": lambda x: F.leaky_relu(x, 0.01),
    }[name]


def _jax(name):
    import jax
    import jax.numpy as jnp
    return {
        "jax.nn.relu": jax.nn.relu,
        "jnp.maximum": lambda x: jnp.maximum(x, 0.0),
        "jax.nn.leaky_relu": lambda x: jax.nn.leaky_relu(x, 0.01),
    }[name]


def _saturation_torch(fn_name, x):
    import torch
    t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    y = getattr(torch, fn_name)(t)
    y.backward()
    return (float(y.detach()), float(t.grad))


def _saturation_jax(fn_name, x):
    import jax
    import jax.numpy as jnp
    fn = {"sigmoid": jax.nn.sigmoid, "tanh": jnp.tanh}[fn_name]
    with jax.enable_x64(True):
        return (float(fn(x)), float(jax.grad(fn)(x)))


def _saturation_numpy(fn_name, x):
    import numpy as np
    from reference import activations
    z = np.array([x])
    return (float(getattr(activations, fn_name)(z)[0]), float(getattr(activations, f"{fn_name}_grad")(z)[0]))


def _default_dtype(framework):
    if framework == "torch":
        import torch
        return str(torch.get_default_dtype()).replace("torch.", "")
    import jax.numpy as jnp
    return str(jnp.zeros(1).dtype)


def _mse_mismatched_shapes():
    """torch's MSELoss with input (n, 1) and target (n,): it broadcasts to (n, n) and warns."""
    import warnings
    import torch
    import torch.nn.functional as F
    y = torch.tensor([[1.0], [2.0]], dtype=torch.float64)
    t = torch.tensor([1.0, 2.0], dtype=torch.float64)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = float(F.mse_loss(y, t))
    return (value, any("broadcast" in str(w.message) for w in caught))


def _losses(framework):
    """Each implementation's own loss functions on one small batch."""
    import numpy as np
    y, t = np.array([[1.0, 2.0], [3.0, 4.0]]), np.zeros((2, 2))
    names = ("sse", "half_sse", "mse")
    if framework == "numpy":
        from reference.losses import LOSSES
        return tuple(float(LOSSES[name][0](y, t)) for name in names)
    if framework == "torch":
        import torch
        from torch_impl import LOSSES
        return tuple(float(LOSSES[name](torch.tensor(y), torch.tensor(t))) for name in names)
    import jax.numpy as jnp
    from jax_impl import LOSSES
    return tuple(float(LOSSES[name](jnp.asarray(y), jnp.asarray(t))) for name in names)


def _matmul_precision(framework):
    if framework == "torch":
        import torch
        return torch.get_float32_matmul_precision()
    import jax
    return str(jax.config.jax_default_matmul_precision)


def _probe_scenario(dtype="float32"):
    from .scenario_file import load
    return load("mixed-3-4-3-2").with_dtype(dtype)


def torch_settings_at_each_linear(step, scenario):
    """The precision settings in force at every F.linear call while ``step(scenario)`` runs, observed
    with a TorchFunctionMode (torch's own interception API), while the user's global asks for 'medium'.

    Returns (the set of settings seen, the global matmul precision afterwards); the user's settings are
    put back either way.
    """
    import torch
    import torch.nn.functional as F
    from torch.overrides import TorchFunctionMode

    import torch_impl as implementation

    seen = set()

    class Observe(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            if func is F.linear:
                seen.add(implementation.settings())
            return func(*args, **(kwargs or {}))

    before = implementation.settings()
    torch.set_float32_matmul_precision("medium")
    try:
        with Observe():
            step(scenario)
        after = implementation.settings()
    finally:
        torch.set_float32_matmul_precision(before[0])
        torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.fp32_precision = before[1], before[2]
    return seen, after[0]


def _torch_precision_in_run():
    """The settings at every nn.Linear call of a real torch_impl.run_step, and the global afterwards."""
    import torch_impl as implementation

    seen, after = torch_settings_at_each_linear(implementation.run_step, _probe_scenario())
    return (tuple(sorted(seen)), after)


def _jax_precision_in_run():
    """The precision of every dot in the step run_step compiles, and the global setting afterwards."""
    import re

    import jax

    import jax_impl as implementation

    text = implementation.lowered_step(_probe_scenario())
    return (tuple(sorted(set(re.findall(r"precision = \[(\w+), \w+\]", text)))),
            str(jax.config.jax_default_matmul_precision))


def _relu_backward_non_finite(framework):
    """relu's backward pass at z = (-1, 0, 2) with an upstream gradient of (inf, inf, inf), then (nan, nan, nan)."""
    import numpy as np
    z = np.array([-1.0, 0.0, 2.0])
    results = []
    for upstream in (np.inf, np.nan):
        da = np.full(3, upstream)
        if framework == "numpy":
            from reference.layers import Activation
            layer = Activation("relu")
            layer.forward(z)
            grad = layer.backward(da)
        elif framework == "torch":
            import torch
            x = torch.tensor(z, requires_grad=True)
            torch.relu(x).backward(torch.tensor(da))
            grad = x.grad.numpy()
        else:
            import jax
            import jax.numpy as jnp
            with jax.enable_x64(True):
                _, vjp = jax.vjp(jax.nn.relu, jnp.asarray(z))
                grad = np.asarray(vjp(jnp.asarray(da))[0])
        results.append(tuple(str(float(v)) for v in grad))
    return tuple(results)


# --- optimizers, classification losses and initialisation (issue: beyond the posts) -----------

def _one_step(framework, make, p, g):
    """One optimizer step on a single float64 parameter ``p`` with gradient ``g`` -> the new p (rounded).

    make: (params) -> a torch.optim optimizer, or () -> an optax GradientTransformation.
    """
    if framework == "torch":
        import torch
        param = torch.tensor([p], dtype=torch.float64, requires_grad=True)
        optimizer = make([param])
        param.grad = torch.tensor([g], dtype=torch.float64)
        optimizer.step()
        return round(float(param.detach()[0]), 9)
    import jax
    import jax.numpy as jnp
    import optax
    with jax.enable_x64(True):
        params = jnp.array([p], jnp.float64)
        transformation = make()
        updates, _ = transformation.update(jnp.array([g], jnp.float64), transformation.init(params), params)
        return round(float(optax.apply_updates(params, updates)[0]), 9)


def _rmsprop_defaults(framework):
    """(the default smoothing constant, where eps goes), both measured from steps of the default optimizer:
    from v = 0 one step on g = 1 moves p by lr/(√(1 − α) + ε), which gives α; then with α = 0 and
    ε = 1e-4, g = 1e-4 moves p by 0.5 (ε outside the root: g/(|g| + ε)) or by 0.01 (inside: g/√(g² + ε))."""
    if framework == "torch":
        import torch
        default = lambda params: torch.optim.RMSprop(params, lr=1.0)
        placement = lambda params: torch.optim.RMSprop(params, lr=1.0, alpha=0.0, eps=1e-4)
    elif framework == "numpy":
        import numpy as np
        from reference import Optimizer, update
        step = lambda o, g: float(update({"p": np.zeros(1)}, {"p": np.array([g])}, {}, o)[0]["p"][0])
        alpha = 1.0 - (1.0 / -step(Optimizer.of("rmsprop", 1.0), 1.0)) ** 2
        moved = -step(Optimizer.of("rmsprop", 1.0, alpha=0.0, eps=1e-4), 1e-4)
        return (round(alpha, 4), "outside" if abs(moved - 0.5) < 1e-6 else "inside")
    else:
        import optax
        default = lambda: optax.rmsprop(1.0)
        placement = lambda: optax.rmsprop(1.0, decay=0.0, eps=1e-4)
    moved = -_one_step(framework, default, 0.0, 1.0)
    alpha = 1.0 - (1.0 / moved) ** 2
    moved = -_one_step(framework, placement, 0.0, 1e-4)
    return (round(alpha, 4), "outside" if abs(moved - 0.5) < 1e-6 else "inside")


def _adagrad_defaults(label):
    """p after one default Adagrad step (lr 0.1) from p = 1 with g = 1, and with g = 0: torch starts the sum at 0 and
    adds ε outside the root (1 − 0.1·1/(1 + 1e-10)); optax starts it at 0.1 with ε inside (1 − 0.1/√(1.1 + 1e-7)).
    With g = 0 and a zero sum torch divides 0 by ε and moves nothing; so does optax, by its where(sum > 0)."""
    if label == "numpy":
        import numpy as np
        from reference import Optimizer, update
        return tuple(round(float(update({"p": np.ones(1)}, {"p": np.array([g])}, {}, Optimizer.of("adagrad", 0.1))[0]
                                 ["p"][0]), 9) for g in (1.0, 0.0))
    if label.startswith("torch"):
        import torch
        make = lambda params: torch.optim.Adagrad(params, lr=0.1)            # noqa: E731
        return tuple(_one_step("torch", make, 1.0, g) for g in (1.0, 0.0))
    import optax
    return tuple(_one_step("jax", lambda: optax.adagrad(0.1), 1.0, g) for g in (1.0, 0.0))


def _gelu_at_one(label):
    """GELU(1) in float64, as the label's call computes it, to 9 decimals."""
    if label.startswith("numpy"):
        import numpy as np
        from reference.activations import ACTIVATIONS
        return round(float(ACTIVATIONS[label.split()[1]][0](np.ones(1))[0]), 9)
    if label.startswith("torch"):
        import torch
        module = torch.nn.GELU(approximate="tanh") if "tanh" in label else torch.nn.GELU()
        return round(float(module(torch.ones((), dtype=torch.float64))), 9)
    import jax
    with jax.enable_x64(True):
        value = jax.nn.gelu(1.0, approximate=False) if "False" in label else jax.nn.gelu(1.0)
        return round(float(value), 9)


def _softplus_above_threshold(label):
    """softplus(25) − 25 in float64, to three significant digits (0 where softplus is linear above 20)."""
    if label == "numpy":
        import numpy as np
        from reference.activations import softplus
        value = float(softplus(np.array([25.0]))[0])
    elif label.startswith("torch"):
        import torch
        value = float(torch.nn.Softplus()(torch.tensor(25.0, dtype=torch.float64)))
    else:
        import jax
        with jax.enable_x64(True):
            if label == "jax.nn.softplus":
                value = float(jax.nn.softplus(25.0))
            else:
                import jax_impl
                value = float(jax_impl.ACTIVATIONS["softplus"](jax.numpy.float64(25.0)))
    return float(f"{value - 25.0:.3g}")


def _layer_norm(label, x, **flax_options):
    """A default LayerNorm (weight 1, bias 0) of the label's library applied to one row ``x`` (a float64 or float32
    NumPy array) -> the output row as NumPy."""
    import numpy as np
    if label == "numpy":
        from reference.layers import LayerNorm
        return LayerNorm(np.ones(x.shape[-1], x.dtype), np.zeros(x.shape[-1], x.dtype)).forward(x)
    if label.startswith("torch"):
        import torch
        dtype = getattr(torch, str(x.dtype))
        return torch.nn.LayerNorm(x.shape[-1], dtype=dtype)(torch.tensor(x)).detach().numpy()
    import jax
    with jax.enable_x64(x.dtype == np.float64):
        if label.startswith("jax_impl"):
            import jax_impl
            layer = {"scale": jax.numpy.ones(x.shape[-1], x.dtype), "bias": jax.numpy.zeros(x.shape[-1], x.dtype)}
            return np.asarray(jax_impl.LAYERS["layer_norm"](layer, jax.numpy.asarray(x), {"eps": 1e-5}, {}))
        if label.startswith("flax.nnx"):
            from flax import nnx
            return np.asarray(nnx.LayerNorm(x.shape[-1], dtype=x.dtype, param_dtype=x.dtype, rngs=nnx.Rngs(0),
                                            **flax_options)(jax.numpy.asarray(x)))
        import flax.linen as linen
        module = linen.LayerNorm(dtype=x.dtype, param_dtype=x.dtype, **flax_options)
        params = module.init(jax.random.key(0), jax.numpy.asarray(x))
        return np.asarray(module.apply(params, jax.numpy.asarray(x)))


def _layer_norm_eps(label):
    """ε = (a/out)² − a² from the output ``out`` = a/√(a² + ε) of x = (−a, a), in float64, to three digits."""
    import numpy as np
    a = 1e-3
    out = float(_layer_norm(label, np.array([[-a, a]]))[0, 1])
    return float(f"{(a / out) ** 2 - a * a:.3g}")


def _layer_norm_variance(label):
    import numpy as np
    options = {"use_fast_variance": False} if "use_fast_variance=False" in label else {}
    out = _layer_norm(label, np.array([[10000.0, 10001.0, 10002.0]], np.float32), **options)
    return bool(abs(float(out[0, 0]) + 1.5 ** 0.5) < 1e-3)


def _attention_packing(label):
    """(the query weight's shape, the output weight's shape) as each stores them, for E = 4 and 2 heads."""
    import numpy as np
    if label == "numpy" or label.startswith("torch"):
        if label == "numpy":
            from reference.layers import MultiHeadAttention
            layer = MultiHeadAttention(np.zeros((12, 4)), None, np.zeros((4, 4)), None, num_heads=2)
            return tuple(layer.in_proj.weight.shape), tuple(layer.out_proj.weight.shape)
        import torch
        layer = torch.nn.MultiheadAttention(4, 2)
        return tuple(layer.in_proj_weight.shape), tuple(layer.out_proj.weight.shape)
    if label.startswith("flax"):
        import jax
        import flax.linen as nn
        params = jax.eval_shape(nn.MultiHeadDotProductAttention(num_heads=2, qkv_features=4).init,   # shapes only
                                jax.random.key(0), np.zeros((1, 3, 4), np.float32))["params"]
    else:
        import jax_impl
        from reference.scenario import LayerSpec
        spec = LayerSpec(None, None, type="multi_head_attention", options=(("causal", False), ("num_heads", 2)),
                         tensors=(("in_proj_weight", np.zeros((12, 4))), ("out_proj.weight", np.zeros((4, 4)))))
        params = jax_impl.to_flax([spec])[0]
    return tuple(params["query"]["kernel"].shape), tuple(params["out"]["kernel"].shape)


def _attention_mask_polarity(label):
    """What step 0 reads through a boolean mask whose row 0 is (True, False), the values being x = (1, 3), q = k = v =
    x: 1.0 if True lets it attend (to step 0), 3.0 if True masks step 0 out."""
    import numpy as np
    x, mask = np.array([[[1.0], [3.0]]]), np.array([[True, False], [True, True]])
    if label == "torch nn.MultiheadAttention":
        import torch
        layer = torch.nn.MultiheadAttention(1, 1, batch_first=True, dtype=torch.float64)
        with torch.no_grad():
            layer.in_proj_weight.fill_(1.0), layer.in_proj_bias.zero_(), layer.out_proj.weight.fill_(1.0)
            layer.out_proj.bias.zero_()
            out = layer(torch.tensor(x), torch.tensor(x), torch.tensor(x), attn_mask=torch.tensor(mask),
                        need_weights=False)[0]
        return round(float(out[0, 0, 0]), 6)
    if label.startswith("torch"):
        import torch
        import torch.nn.functional as F
        q = torch.tensor(x)[:, None]                            # (n, heads, T, D)
        return round(float(F.scaled_dot_product_attention(q, q, q, attn_mask=torch.tensor(mask))[0, 0, 0, 0]), 6)
    import jax
    q = np.asarray(x)[:, :, None, :]                            # (n, T, heads, D)
    with jax.enable_x64(True):
        if label.startswith("flax"):
            import flax.linen as nn
            out = nn.dot_product_attention(q, q, q, mask=mask[None, None])
        else:
            out = jax.nn.dot_product_attention(q, q, q, mask=mask[None, None])
        return round(float(out[0, 0, 0, 0]), 6)


def _attention_softmax_precision(label):
    """float64 self-attention of 3 steps (q = k = v = x, one head of 4): within 1e-12 of the same formula in float64
    NumPy (True), or has the softmax been rounded to float32 (False)?"""
    import numpy as np
    x = np.random.default_rng(0).standard_normal((1, 3, 1, 4))                  # (n, T, heads, D)
    logits = np.einsum("nthd,nshd->nhts", x, x) / 2.0                          # /√4
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    exact = np.einsum("nhts,nshd->nthd", weights / weights.sum(-1, keepdims=True), x)[:, :, 0]
    if label == "numpy":
        from reference.layers import MultiHeadAttention
        out = MultiHeadAttention(np.vstack([np.eye(4)] * 3), None, np.eye(4), None).forward(x[:, :, 0])
    elif label.startswith("torch"):
        import torch
        import torch.nn.functional as F
        q = torch.tensor(x).transpose(1, 2)                                     # (n, heads, T, D)
        out = F.scaled_dot_product_attention(q, q, q).transpose(1, 2)[:, :, 0].numpy()
    elif label.startswith("jax_impl"):
        import jax

        import jax_impl
        from reference.scenario import LayerSpec
        spec = LayerSpec(None, None, type="multi_head_attention", options=(("causal", False), ("num_heads", 1)),
                         tensors=(("in_proj_weight", np.vstack([np.eye(4)] * 3)), ("out_proj.weight", np.eye(4))))
        with jax.enable_x64(True):
            out = jax_impl.LAYERS["multi_head_attention"](jax_impl.to_flax([spec])[0], x[:, :, 0], {"causal": False},
                                                          {})
    else:
        import jax
        with jax.enable_x64(True):
            if label.startswith("flax"):
                import flax.linen as nn
                out = nn.dot_product_attention(x, x, x)[:, :, 0]
            else:
                out = jax.nn.dot_product_attention(x, x, x)[:, :, 0]
    return bool(np.max(np.abs(np.asarray(out) - exact)) < 1e-12)


def _lstm_gate_order(label):
    """The gate order that reproduces a framework's LSTM: all weights 0, four distinct biases (one per stacked block),
    x = 0 for two steps; each of the 24 orders predicts h_2 from the LSTM equations, the one that matches is the
    order the framework stacks (Flax keeps a dense per gate: its names)."""
    import itertools
    import math

    import numpy as np
    biases = np.array([0.3, -0.7, 1.1, 0.5])
    sig = lambda v: 1.0 / (1.0 + math.exp(-v))                                      # noqa: E731

    def predicted(order):
        gate = dict(zip(order, biases))
        c = h = 0.0
        for _ in range(2):
            c = sig(gate["f"]) * c + sig(gate["i"]) * math.tanh(gate["g"])
            h = sig(gate["o"]) * math.tanh(c)
        return h

    if label.startswith("flax"):
        import jax
        import flax.linen as nn
        cell = nn.LSTMCell(1)
        carry = (np.zeros((1, 1)), np.zeros((1, 1)))
        params = jax.eval_shape(cell.init, jax.random.key(0), carry, np.zeros((1, 1)))     # the names, not values
        names = [name for name in params["params"] if name.startswith("i")]          # one dense per gate, input side
        return ", ".join(sorted(names, key=lambda name: "ifgo".index(name[1])))         # listed in torch's order
    if label == "numpy":
        from reference.layers import LSTM
        h2 = LSTM({"weight_ih_l0": np.zeros((4, 1)), "weight_hh_l0": np.zeros((4, 1)), "bias_ih_l0": biases,
                   "bias_hh_l0": np.zeros(4)}).forward(np.zeros((1, 2, 1)))[0, 1, 0]
    else:
        import torch
        lstm = torch.nn.LSTM(1, 1, batch_first=True, dtype=torch.float64)
        with torch.no_grad():
            for param in lstm.parameters():
                param.zero_()
            lstm.bias_ih_l0.copy_(torch.tensor(biases))
            h2 = float(lstm(torch.zeros(1, 2, 1, dtype=torch.float64))[0][0, 1, 0])
    return ", ".join(next(order for order in itertools.permutations("ifgo") if abs(predicted(order) - h2) < 1e-12))


def _gru_reset_gate(label):
    """Where the GRU's reset gate multiplies: all weights 0, x = h_0 = 0, r ≈ 0 (its biases −30), b_in = 0.2, b_hn =
    0.9, z = 0.5: after the hidden matmul n = tanh(b_in + r·b_hn) = tanh(0.2), before it n = tanh(b_in + b_hn)."""
    import math

    import numpy as np
    b_ih, b_hh = np.array([-30.0, 0.0, 0.2]), np.array([0.0, 0.0, 0.9])
    if label == "numpy":
        from reference.layers import GRU
        h1 = GRU({"weight_ih_l0": np.zeros((3, 1)), "weight_hh_l0": np.zeros((3, 1)), "bias_ih_l0": b_ih,
                  "bias_hh_l0": b_hh}).forward(np.zeros((1, 1, 1)))[0, 0, 0]
    elif label.startswith("torch"):
        import torch
        gru = torch.nn.GRU(1, 1, batch_first=True, dtype=torch.float64)
        with torch.no_grad():
            for param in gru.parameters():
                param.zero_()
            gru.bias_ih_l0.copy_(torch.tensor(b_ih))
            gru.bias_hh_l0.copy_(torch.tensor(b_hh))
            h1 = float(gru(torch.zeros(1, 1, 1, dtype=torch.float64))[0][0, 0, 0])
    else:
        import jax
        import flax.linen as nn
        zero = {"kernel": np.zeros((1, 1))}
        params = {"ir": {**zero, "bias": np.array([-30.0])}, "iz": {**zero, "bias": np.zeros(1)},
                  "in": {**zero, "bias": np.array([0.2])}, "hr": zero, "hz": zero,
                  "hn": {**zero, "bias": np.array([0.9])}}
        with jax.enable_x64(True):
            (h1, _) = nn.GRUCell(1, param_dtype=np.float64).apply({"params": params}, np.zeros((1, 1)),
                                                                   np.zeros((1, 1)))
        h1 = float(np.asarray(h1)[0, 0])
    return "after the hidden matmul" if abs(h1 - 0.5 * math.tanh(0.2)) < 1e-9 else "before it"


def _lstm_state_order(label):
    """Where h sits in the state an LSTM returns after a sequence (the one equal to the output's last step)."""
    import numpy as np
    x = np.random.default_rng(0).standard_normal((1, 3, 2))
    if label.startswith("torch"):
        import torch
        lstm = torch.nn.LSTM(2, 2, batch_first=True, dtype=torch.float64)
        out, state = lstm(torch.tensor(x))
        last, state = out[0, -1].detach().numpy(), [s[0, 0].detach().numpy() for s in state]
        return ("(h, c)", "(c, h)")[[bool(np.allclose(s, last)) for s in state].index(True)]
    import jax
    import flax.linen as nn
    rnn = nn.RNN(nn.LSTMCell(2), return_carry=True)
    carry, out = rnn.apply(rnn.init(jax.random.key(0), x), x)
    return ("(h, c)", "(c, h)")[[bool(np.allclose(s[0], out[0, -1])) for s in carry].index(True)]


def _recurrent_init(label):
    """A fresh LSTM's (biases all zero?, the recurrent kernel orthogonal?)."""
    import numpy as np
    if label.startswith("torch"):
        import torch
        lstm = torch.nn.LSTM(4, 4)
        bias, recurrent = lstm.bias_hh_l0.detach().numpy(), lstm.weight_hh_l0.detach().numpy()[:4].T
    else:
        import jax
        import flax.linen as nn
        cell = nn.LSTMCell(4)
        params = cell.init(jax.random.key(0), cell.initialize_carry(jax.random.key(0), (1, 4)), np.zeros((1, 4)))
        bias, recurrent = np.asarray(params["params"]["hi"]["bias"]), np.asarray(params["params"]["hi"]["kernel"])
    return bool(np.all(bias == 0)), bool(np.allclose(recurrent.T @ recurrent, np.eye(4), atol=1e-5))


def _ignore_index(label):
    """Cross-entropy of two rows whose labels are 1 and torch's ignore_index −100: "left out" when the result is row
    0's loss alone, "nan" when the −100 row gives NaN."""
    import math

    import numpy as np
    y, labels = np.array([[1.0, 2.0, 0.5], [0.3, -1.0, 2.0]]), np.array([1, -100])
    alone = float(-(y[0, 1] - math.log(np.exp(y[0]).sum())))
    if label == "numpy":
        from reference.losses import cross_entropy
        value = float(cross_entropy(y, np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])))      # a -100 row: zeros
    elif label.startswith("torch"):
        import torch
        value = float(torch.nn.functional.cross_entropy(torch.tensor(y), torch.tensor(labels)))
    else:
        import jax
        import optax

        import jax_impl
        with jax.enable_x64(True):
            value = (float(jax_impl.LOSSES["cross_entropy"](jax.numpy.asarray(y), jax.numpy.asarray(labels)))
                     if label.startswith("jax_impl") else
                     float(optax.softmax_cross_entropy_with_integer_labels(y, labels)[1]))
    return "nan" if math.isnan(value) else "left out" if abs(value - alone) < 1e-12 else f"{value:.6g}"


def _key_bias_gradient(label):
    """Self-attention of random x (2 rows, 3 steps, E = 4, 2 heads) under a random upstream gradient: is the key
    bias's gradient zero up to rounding (below 1e-12 of the query bias's largest)?"""
    import numpy as np
    rng = np.random.default_rng(0)
    x, dout = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 3, 4))
    in_proj, out_proj = 0.5 * rng.standard_normal((12, 4)), 0.5 * rng.standard_normal((4, 4))
    in_bias, out_bias = 0.3 * rng.standard_normal(12), np.zeros(4)
    if label == "numpy":
        from reference.layers import MultiHeadAttention
        layer = MultiHeadAttention(in_proj, in_bias, out_proj, out_bias, num_heads=2)
        layer.forward(x)
        layer.backward(dout)
        grad = layer.in_proj.bias_grad
    elif label.startswith("torch"):
        import torch
        layer = torch.nn.MultiheadAttention(4, 2, batch_first=True, dtype=torch.float64)
        with torch.no_grad():
            for param, value in ((layer.in_proj_weight, in_proj), (layer.in_proj_bias, in_bias),
                                 (layer.out_proj.weight, out_proj), (layer.out_proj.bias, out_bias)):
                param.copy_(torch.tensor(value))
        inputs = torch.tensor(x)
        (layer(inputs, inputs, inputs, need_weights=False)[0] * torch.tensor(dout)).sum().backward()
        grad = layer.in_proj_bias.grad.numpy()
    else:
        import jax

        import jax_impl
        from reference.scenario import LayerSpec
        spec = LayerSpec(None, None, type="multi_head_attention", options=(("causal", False), ("num_heads", 2)),
                         tensors=(("in_proj_weight", in_proj), ("in_proj_bias", in_bias), ("out_proj.weight", out_proj),
                                  ("out_proj.bias", out_bias)))
        with jax.enable_x64(True):
            params = jax_impl.to_flax([spec])[0]
            grads = jax.grad(lambda p: (jax_impl.LAYERS["multi_head_attention"](p, x, {"causal": False}, {})
                                        * dout).sum())(params)
        grad = np.concatenate([np.asarray(grads[part]["bias"]).reshape(-1) for part in ("query", "key", "value")])
    query, key = np.abs(grad[:4]).max(), np.abs(grad[4:8]).max()
    return bool(key < 1e-12 * query)


def _attention_init(label):
    """A fresh attention layer of width E = 256: (the query weights' standard deviation × √E to one digit, its
    in-projection bias all 0?)."""
    import numpy as np
    if label.startswith("torch"):
        import torch
        torch.manual_seed(0)
        layer = torch.nn.MultiheadAttention(256, 4)
        query, bias = layer.in_proj_weight.detach().numpy()[:256], layer.in_proj_bias.detach().numpy()
    else:
        import jax
        import flax.linen as nn
        params = nn.MultiHeadDotProductAttention(num_heads=4).init(jax.random.key(0), np.zeros((1, 1, 256)))
        query, bias = np.asarray(params["params"]["query"]["kernel"]), np.asarray(params["params"]["query"]["bias"])
    return round(float(query.std()) * 16, 1), bool(np.all(bias == 0))


def _padding_row_trained(label):
    """An embedding of 3 rows with padding row 0 (where the framework has one), looked up at (0, 1, 0) under a loss of
    the sum of its outputs: does row 0 get a gradient?"""
    import numpy as np
    table, indices = np.arange(6.0).reshape(3, 2), np.array([0, 1, 0])
    if label == "numpy":
        from reference.layers import Embedding
        layer = Embedding(table, padding_idx=0)
        layer.forward(indices)
        layer.backward(np.ones((3, 2)))
        grad = layer.weight_grad
    elif label.startswith("torch"):
        import torch
        layer = torch.nn.Embedding(3, 2, padding_idx=0, dtype=torch.float64)
        layer(torch.tensor(indices)).sum().backward()
        grad = layer.weight.grad.numpy()
    else:
        import inspect

        import jax
        import flax.linen as nn
        if "padding_idx" in inspect.signature(nn.Embed).parameters:
            return "has padding_idx"
        with jax.enable_x64(True):
            if label.startswith("jax_impl"):
                import jax_impl
                grad = jax.grad(lambda p: jax_impl.LAYERS["embedding"](p, indices, {"padding_idx": 0}, {}).sum())(
                    {"embedding": table})["embedding"]
            else:
                grad = jax.grad(lambda p: nn.Embed(3, 2).apply({"params": p}, indices).sum())(
                    {"embedding": table})["embedding"]
    return bool(np.any(np.asarray(grad)[0] != 0))


def _group_norm_defaults(label):
    """(num_groups when not given, ε measured from x = (−a, a) over 2 channels of one group, a = 1e-3)."""
    import inspect

    import numpy as np
    a, x = 1e-3, np.array([[-1e-3, 1e-3]])
    if label == "numpy":
        from reference.registry import LAYER_TYPES
        from reference.layers import GroupNorm
        groups = LAYER_TYPES["group_norm"].options["num_groups"] or "required"
        out = GroupNorm(np.ones(2), np.zeros(2), num_groups=1).forward(x)
    elif label.startswith("torch"):
        import torch
        signature = inspect.signature(torch.nn.GroupNorm).parameters["num_groups"]
        groups = "required" if signature.default is inspect.Parameter.empty else signature.default
        out = torch.nn.GroupNorm(1, 2, dtype=torch.float64)(torch.tensor(x)).detach().numpy()
    else:
        import jax
        import flax.linen as linen
        groups = linen.GroupNorm().num_groups
        with jax.enable_x64(True):
            module = linen.GroupNorm(num_groups=1, dtype=jax.numpy.float64, param_dtype=jax.numpy.float64)
            variables = module.init(jax.random.key(0), jax.numpy.asarray(x))
            out = np.asarray(module.apply(variables, jax.numpy.asarray(x)))
    return groups, float(f"{(a / float(out[0, 1])) ** 2 - a * a:.3g}")


def _batch_norm_running(statistic):
    """The probe of a batch-norm row: one training step of a one-channel BatchNorm from running mean 0 and variance 1,
    under each library's default momentum ("mean": a batch (0, 2), mean 1) or the batch's alone ("var": momentum 1
    in torch's meaning, 0 in Flax's) -> the running mean or variance after it, float64, to 9 decimals."""
    def probe(label):
        import numpy as np
        x = np.array([[0.0], [2.0]])
        momentum = None if statistic == "mean" else 1.0
        if label == "numpy" or label.startswith("jax_impl"):
            from reference.scenario import Scenario
            layer = {"type": "batch_norm1d", "weight": [1.0], "bias": [0.0], "running_mean": [0.0],
                     "running_var": [1.0], **({} if momentum is None else {"momentum": momentum})}
            scenario = Scenario.build("probe", [layer], "mse", x, np.zeros((2, 1)), 0.0)
            if label == "numpy":
                import reference
                trace = reference.run_step(scenario)
            else:
                import jax_impl
                trace = jax_impl.run_step(scenario)
            value = trace[f"updated.layers.0.running_{statistic}"][0]
        elif label.startswith("torch"):
            import torch
            module = torch.nn.BatchNorm1d(1, dtype=torch.float64, **({} if momentum is None else {"momentum": momentum}))
            module(torch.tensor(x))
            value = float(getattr(module, f"running_{statistic}")[0])
        else:
            import jax
            import flax.linen as linen
            with jax.enable_x64(True):
                module = linen.BatchNorm(use_running_average=False, dtype=jax.numpy.float64,
                                         param_dtype=jax.numpy.float64,
                                         **({} if momentum is None else {"momentum": 1.0 - momentum}))
                variables = module.init(jax.random.key(0), jax.numpy.asarray(x))
                _, changed = module.apply(variables, jax.numpy.asarray(x), mutable=["batch_stats"])
                value = float(changed["batch_stats"][statistic][0])
        return round(float(value), 9)
    return probe


def _adamw_default_decay(framework):
    """The default weight decay of AdamW, measured: from p = 1 with g = 0 and lr = 1 the Adam part is 0,
    so the step leaves p = 1 − λ."""
    if framework == "torch":
        import torch
        return round(1.0 - _one_step("torch", lambda params: torch.optim.AdamW(params, lr=1.0), 1.0, 0.0), 9)
    import optax
    return round(1.0 - _one_step("jax", lambda: optax.adamw(1.0), 1.0, 0.0), 9)


def _decay_coupling(label):
    """p after one step from p = 1, g = 0, lr = 0.1, λ = 0.1: coupled (L2 in the gradient, Adam-normalised
    to a step of ≈ lr) gives 0.9; decoupled (p·(1 − lr·λ)) gives 0.99."""
    o = dict(lr=0.1, weight_decay=0.1)
    if label == "numpy adam":
        import numpy as np
        from reference import Optimizer, update
        return round(float(update({"p": np.ones(1)}, {"p": np.zeros(1)}, {}, Optimizer.of("adam", **o))[0]["p"][0]), 6)
    if label.startswith("torch"):
        import torch
        cls = torch.optim.Adam if label == "torch Adam(weight_decay)" else torch.optim.AdamW
        return round(_one_step("torch", lambda params: cls(params, **o), 1.0, 0.0), 6)
    import optax
    if label == "optax.adamw":
        return round(_one_step("jax", lambda: optax.adamw(0.1, weight_decay=0.1), 1.0, 0.0), 6)
    return round(_one_step("jax", lambda: optax.chain(optax.add_decayed_weights(0.1), optax.scale_by_adam(),
                                                      optax.scale(-0.1)), 1.0, 0.0), 6)


def _adam_first_step_float32(label):
    """p after Adam's first step in float32 from p = 0, g = 1, lr = 1: exactly −m̂/(√v̂ + ε) = −1/(1 + 1e-8),
    which rounds to −1. How far each library lands from it is how it rounds the bias corrections."""
    if label == "numpy":
        import numpy as np
        from reference import Optimizer, update
        step = update({"p": np.zeros(1, np.float32)}, {"p": np.ones(1, np.float32)}, {}, Optimizer.of("adam", 1.0))
        return round(float(step[0]["p"][0]), 9)
    if label == "torch Adam":
        import torch
        param = torch.zeros(1, dtype=torch.float32, requires_grad=True)
        optimizer = torch.optim.Adam([param], lr=1.0)
        param.grad = torch.ones(1)
        optimizer.step()
        return round(float(param.detach()[0]), 9)
    import jax.numpy as jnp
    import optax
    params = jnp.zeros(1, jnp.float32)
    transformation = optax.adam(1.0)
    updates, _ = transformation.update(jnp.ones(1, jnp.float32), transformation.init(params), params)
    return round(float(optax.apply_updates(params, updates)[0]), 9)


LOGITS = [[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]]
CLASSES = [0, 2]


def _cross_entropy(label):
    """(shape of what the loss returns, its values rounded) for logits LOGITS and classes CLASSES."""
    import numpy as np
    onehot = np.eye(3)[CLASSES]
    if label == "numpy":
        from reference.losses import cross_entropy
        value = cross_entropy(np.array(LOGITS), onehot)
    elif label.startswith("torch"):
        import torch
        import torch.nn.functional as F
        target = torch.tensor(CLASSES) if "indices" in label else torch.tensor(onehot)
        value = F.cross_entropy(torch.tensor(LOGITS, dtype=torch.float64), target).numpy()
    else:
        import jax
        import jax.numpy as jnp
        import optax
        with jax.enable_x64(True):
            logits = jnp.array(LOGITS, jnp.float64)
            value = np.asarray(optax.softmax_cross_entropy_with_integer_labels(logits, jnp.array(CLASSES))
                               if "integer" in label else optax.softmax_cross_entropy(logits, jnp.asarray(onehot)))
    value = np.asarray(value)
    return (str(value.shape), tuple(round(float(v), 9) for v in value.reshape(-1)))


def _label_smoothing(label):
    """cross-entropy of LOGITS against CLASSES with label smoothing 0.1, mean over rows."""
    import numpy as np
    onehot = np.eye(3)[CLASSES]
    if label == "numpy":
        from reference.losses import cross_entropy
        return round(float(cross_entropy(np.array(LOGITS), onehot, label_smoothing=0.1)), 9)
    if label.startswith("torch"):
        import torch
        import torch.nn.functional as F
        return round(float(F.cross_entropy(torch.tensor(LOGITS, dtype=torch.float64), torch.tensor(CLASSES),
                                           label_smoothing=0.1)), 9)
    import jax
    import jax.numpy as jnp
    import optax
    with jax.enable_x64(True):
        labels = optax.smooth_labels(jax.nn.one_hot(jnp.array(CLASSES), 3, dtype=jnp.float64), 0.1)
        return round(float(jnp.mean(optax.softmax_cross_entropy(jnp.array(LOGITS, jnp.float64), labels))), 9)


FAN_IN, FAN_OUT = 400, 250


def _default_init(label):
    """A default (FAN_OUT × FAN_IN) layer's weights, measured: (std·√fan_in to 1 decimal, every |w| within
    1/√fan_in, how the bias starts). Seeds are fixed and the caller's random state is left alone."""
    import numpy as np
    if label == "torch nn.Linear":
        import torch
        with torch.random.fork_rng():
            torch.manual_seed(0)
            layer = torch.nn.Linear(FAN_IN, FAN_OUT, dtype=torch.float64)
        weight, bias = layer.weight.detach().numpy(), layer.bias.detach().numpy()
    elif label == "jax lecun_normal":
        import jax
        with jax.enable_x64(True):
            weight = np.asarray(jax.nn.initializers.lecun_normal()(jax.random.key(0), (FAN_IN, FAN_OUT), jax.numpy.float64))
        bias = None
    else:
        from flax import nnx
        layer = nnx.Linear(FAN_IN, FAN_OUT, rngs=nnx.Rngs(0))
        weight, bias = np.asarray(layer.kernel[...]), np.asarray(layer.bias[...])
    scale = np.sqrt(FAN_IN)
    if bias is None:
        start = "no bias initializer"
    elif not np.any(bias):
        start = "zeros"
    else:
        start = f"uniform ±1/√fan_in" if np.all(np.abs(bias) <= 1 / scale) else "other"
    return (round(float(weight.std() * scale), 1), bool(np.all(np.abs(weight) <= 1 / scale)), start)


# --- convolution and pooling rows: 1-D probes stand for each spatial axis --------------------

STEM = {"size": 224, "kernel": 7, "stride": 2}      # ResNet's first conv (flax #2993)


def _conv_probe(label, size, kernel, stride):
    """(pad before, output length) of a conv over one axis of ``size``, measured: with the input 1, 2, …, size and a
    kernel whose only 1 is its last tap, the first output reads x[kernel − 1 − before] (0 if that is padding)."""
    import numpy as np
    x = np.arange(1.0, size + 1.0)
    w = np.zeros(kernel)
    w[-1] = 1.0
    if label.startswith("torch"):
        import torch
        import torch.nn.functional as F
        import warnings
        padding = {"torch padding=\"same\"": "same", "torch padding=3": 3}[label]
        with warnings.catch_warnings():     # torch notes that an even kernel pads a copy: the point of the row
            warnings.filterwarnings("ignore", message="Using padding='same' with even kernel", category=UserWarning)
            out = F.conv1d(torch.tensor(x).view(1, 1, -1), torch.tensor(w).view(1, 1, -1), stride=stride,
                           padding=padding).numpy().ravel()
    elif label.startswith("numpy"):
        from reference.layers import Conv1d
        from reference.registry import same_padding
        out = Conv1d(w.reshape(1, 1, -1), None, stride=(stride,), padding=(same_padding(kernel),) if stride == 1
                     else ((3, 3),)).forward(x.reshape(1, 1, -1)).ravel()
    else:
        import jax
        padding = {"jax lax \"SAME\"": "SAME", "jax lax ((2, 3),)": ((2, 3),)}[label]
        with jax.enable_x64(True):
            out = np.asarray(jax.lax.conv_general_dilated(x.reshape(1, -1, 1), w.reshape(-1, 1, 1), (stride,), padding,
                                                          dimension_numbers=("NWC", "WIO", "NWC"))).ravel()
    first = int(out[0])
    return (kernel - 1 - (first - 1) if first else "more than kernel − 1", len(out))


def _kernel_layout(label):
    """The weight's shape for 3 input channels, 8 output channels and a 5×4 kernel, as each library creates it."""
    if label.startswith("torch"):
        import torch
        return tuple(torch.nn.Conv2d(3, 8, (5, 4)).weight.shape)
    if label.startswith("flax"):
        from flax import nnx
        return tuple(nnx.Conv(3, 8, (5, 4), rngs=nnx.Rngs(0)).kernel[...].shape)
    import numpy as np
    import jax_impl
    return np.shape(jax_impl.to_flax([(np.zeros((8, 3, 5, 4)), None)])[0]["kernel"])


def _flatten_order(label):
    """Which element of a (C, H, W) = (2, 2, 3) map, numbered in torch's NCHW order, lands at each flattened position."""
    import numpy as np
    numbered = np.arange(12.0).reshape(1, 2, 2, 3)
    if label.startswith("torch"):
        import torch
        out = torch.nn.Flatten()(torch.tensor(numbered)).numpy()
    elif label.startswith("jax reshape"):
        import jax.numpy as jnp
        out = np.asarray(jnp.reshape(jnp.asarray(np.moveaxis(numbered, 1, -1)), (1, -1)))
    else:
        import jax.numpy as jnp

        import jax_impl
        out = np.asarray(jax_impl.flatten({}, jnp.asarray(np.moveaxis(numbered, 1, -1)), {}, {}))
    return tuple(int(v) for v in out.ravel())


def _max_pool_ties(label):
    """∂(max of a 2×2 window of equal values)/∂(each element), row-major."""
    import numpy as np
    x = np.ones((1, 1, 2, 2))
    if label.startswith("torch"):
        import torch
        t = torch.tensor(x, requires_grad=True)
        torch.nn.MaxPool2d(2)(t).sum().backward()
        grad = t.grad.numpy()
    elif label.startswith("jax"):
        import jax
        import jax.numpy as jnp
        with jax.enable_x64(True):
            grad = np.asarray(jax.grad(lambda v: jax.lax.reduce_window(v, -jnp.inf, jax.lax.max, (1, 2, 2, 1),
                                                                         (1, 2, 2, 1), "VALID").sum())(
                jnp.asarray(np.moveaxis(x, 1, -1))))
    else:
        from reference.layers import MaxPool2d
        pool = MaxPool2d((2, 2), (2, 2), ((0, 0), (0, 0)))
        pool.forward(x)
        grad = pool.backward(np.ones((1, 1, 1, 1)))
    return tuple(float(v) for v in grad.ravel())


def _avg_pool_padding(label):
    """The corner output of a 2×2 average pool, stride 1, padding 1, over a 2×2 map of ones."""
    import numpy as np
    x = np.ones((1, 1, 2, 2))
    include = "False" not in label and "count_include_pad=false" not in label
    if label.startswith("torch"):
        import torch
        out = torch.nn.AvgPool2d(2, 1, 1, count_include_pad=include)(torch.tensor(x)).numpy()
    elif label.startswith("flax"):
        import jax.numpy as jnp
        from flax import linen
        out = np.asarray(linen.avg_pool(jnp.asarray(np.moveaxis(x, 1, -1)), (2, 2), (1, 1), ((1, 1), (1, 1)),
                                        count_include_pad=include))
    else:
        from reference.layers import AvgPool2d
        out = AvgPool2d((2, 2), (1, 1), ((1, 1), (1, 1)), include).forward(x)
    return float(out.ravel()[0])


def flax_missing_hint():
    """'' when Flax is installed, else the install line the registry shows in its row."""
    import importlib.util
    return "" if importlib.util.find_spec("flax") else "flax is not installed: pip install 'backproof[flax]' -c constraints.txt"


# --- the registry --------------------------------------------------------------------------

def _registry():
    from reference.activations import leaky_relu_grad, relu_grad
    kink = "the derivative at the kink z = 0"
    return (
        Convention("relu-kink", f"relu: {kink}",
                   {"numpy": 0.0, "torch F.relu": 0.0, "torch.maximum(x, 0)": 0.5, "torch clamp_min(0)": 1.0,
                    "jax.nn.relu": 0.0, "jnp.maximum(x, 0.)": 0.5},
                   "0, the left derivative, as F.relu and jax.nn.relu; maximum splits ties 0.5/0.5 and clamp_min takes 1",
                   {"numpy": lambda: _numpy_grad_at_zero(relu_grad),
                    "torch F.relu": lambda: _torch_grad_at_zero(_torch("F.relu")),
                    "torch.maximum(x, 0)": lambda: _torch_grad_at_zero(_torch("torch.maximum")),
                    "torch clamp_min(0)": lambda: _torch_grad_at_zero(_torch("clamp_min")),
                    "jax.nn.relu": lambda: _jax_grad_at_zero(_jax("jax.nn.relu")),
                    "jnp.maximum(x, 0.)": lambda: _jax_grad_at_zero(_jax("jnp.maximum"))}),
        Convention("leaky-relu-kink", f"leaky_relu (slope 0.01): {kink}",
                   {"numpy": 0.01, "torch F.leaky_relu": 0.01, "jax.nn.leaky_relu": 1.0},
                   "the negative slope, as torch: the left derivative, consistent with relu'(0) = 0",
                   {"numpy": lambda: _numpy_grad_at_zero(leaky_relu_grad, 0.01),
                    "torch F.leaky_relu": lambda: _torch_grad_at_zero(_torch("F.leaky_relu")),
                    "jax.nn.leaky_relu": lambda: _jax_grad_at_zero(_jax("jax.nn.leaky_relu"))}),
        Convention("gelu-default-approximation", "GELU(1) as each library's default call computes it: exact "
                   "z·Φ(z) = 0.841344746, the tanh approximation 0.841191991",
                   {"numpy gelu": 0.841344746, "numpy gelu_tanh": 0.841191991, "torch nn.GELU()": 0.841344746,
                    "torch nn.GELU(approximate='tanh')": 0.841191991, "jax.nn.gelu": 0.841191991,
                    "jax.nn.gelu(approximate=False)": 0.841344746},
                   "two activations, named: `gelu` is exact (torch's default), `gelu_tanh` the approximation "
                   "(jax.nn.gelu's default, which flax.linen.gelu and flax.nnx.gelu re-export). The JAX mirror passes "
                   "approximate=False for `gelu`; import-torch reads nn.GELU's approximate",
                   _gelu_at_one),
        Convention("softplus-threshold", "softplus(25) − 25 (log(1 + e²⁵) − 25 = 1.39e-11)",
                   {"numpy": 0.0, "torch nn.Softplus()": 0.0, "jax.nn.softplus": 1.39e-11, "jax_impl softplus": 0.0},
                   "torch's: nn.Softplus (beta 1, threshold 20) returns z itself above 20, a relative 1e-10 from "
                   "log(1 + e^z) at z = 20, beyond float64's tolerance; jax.nn.softplus has no threshold, so the JAX "
                   "mirror writes where(z > 20, z, softplus(z))",
                   _softplus_above_threshold),
        Convention("layer-norm-eps", "the ε a default LayerNorm adds to the variance, measured: x = (−a, a) with "
                   "a = 1e-3 normalises to a/√(a² + ε)",
                   {"numpy": 1e-05, "torch nn.LayerNorm": 1e-05, "flax.linen.LayerNorm": 1e-06,
                    "flax.nnx.LayerNorm": 1e-06},
                   "torch's 1e-5, the scenario's `eps` (import-torch reads the module's). A port to Flax that keeps "
                   "its default ε computes another function: at a small variance the outputs differ in the first digit "
                   "(flax #2195)",
                   _layer_norm_eps),
        Convention("layer-norm-variance", "float32 LayerNorm of x = 10⁴ + (0, 1, 2): is the first output within "
                   "1e-3 of the exact −1.2247?",
                   {"numpy": True, "torch nn.LayerNorm": True, "flax.linen.LayerNorm": False,
                    "flax.linen.LayerNorm(use_fast_variance=False)": True, "jax_impl layer_norm": True},
                   "torch's: the variance as the mean of (x − mean)². Flax's default (use_fast_variance=True) takes "
                   "E[x²] − E[x]², which cancels catastrophically when the mean is large against the spread (10⁸ "
                   "against 0.67 here, in float32); the JAX mirror computes the two-pass form",
                   _layer_norm_variance),
        Convention("group-norm-defaults", "a GroupNorm built with the fewest arguments: (its groups, the ε measured "
                   "as layer-norm-eps measures it, from 2 channels in 1 group)",
                   {"torch nn.GroupNorm": ("required", 1e-05), "flax.linen.GroupNorm": (32, 1e-06),
                    "numpy": ("required", 1e-05)},
                   "torch's: num_groups is required (a scenario without it is refused by name), ε 1e-5 unless given. "
                   "Flax defaults to 32 groups and 1e-6, and its default fast variance cancels as LayerNorm's does; "
                   "the JAX mirror computes the two-pass variance with the scenario's groups and ε",
                   _group_norm_defaults),
        Convention("batch-norm-momentum", "a default BatchNorm's running mean after one training step from 0 on a "
                   "batch whose mean is 1",
                   {"numpy": 0.1, "torch nn.BatchNorm1d": 0.1, "flax.linen.BatchNorm": 0.01, "jax_impl batch_norm1d": 0.1},
                   "torch's meaning, momentum = the batch's share (0.1): running ← 0.9·running + 0.1·batch. Flax's "
                   "momentum is the running value's share, 0.99 by default: torch's m is Flax's 1 − m "
                   "(scvi-tools #2309)",
                   _batch_norm_running("mean")),
        Convention("batch-norm-running-variance", "the running variance after one training step with momentum 1 (the "
                   "batch's alone) on x = (0, 2): biased variance 1, unbiased 2",
                   {"numpy": 2.0, "torch nn.BatchNorm1d(momentum=1)": 2.0, "flax.linen.BatchNorm(momentum=0)": 1.0,
                    "jax_impl batch_norm1d": 2.0},
                   "torch's: the unbiased batch variance (N − 1) goes into the running one, while the batch is "
                   "normalised by the biased one (N). Flax keeps the biased variance; a port that loads torch's "
                   "running statistics and trains in Flax drifts by N/(N − 1)",
                   _batch_norm_running("var")),
        Convention("embedding-padding-idx", "an embedding with padding row 0 (where the framework has the option), "
                   "looked up at (0, 1, 0): does row 0 take a gradient?",
                   {"numpy": False, "torch nn.Embedding(padding_idx=0)": False, "flax.linen.Embed": True,
                    "jax_impl embedding": False},
                   "torch's: the padding_idx row is looked up like any other but never trained (its gradient is "
                   "0), the usual way to pad sequences of tokens. Flax's Embed has no padding_idx, so a port trains "
                   "the padding row; the JAX mirror stops its gradient (jax.lax.stop_gradient on that row). A 0 by "
                   "definition, not by the calculus: torch.autograd.gradcheck fails on it (the row does move the "
                   "output), so backproof's finite differences and established checkers hold that row fixed",
                   _padding_row_trained),
        Convention("attention-weight-packing", "where self-attention keeps its weights, E = 4 and 2 heads: (the "
                   "query weight's shape, the output weight's shape)",
                   {"numpy": ((12, 4), (4, 4)), "torch nn.MultiheadAttention": ((12, 4), (4, 4)),
                    "flax.linen.MultiHeadDotProductAttention": ((4, 2, 2), (2, 2, 4)),
                    "jax_impl.to_flax": ((4, 2, 2), (2, 2, 4))},
                   "torch's: q, k and v packed into one in_proj_weight (3E, E), rows in that order, and out_proj "
                   "(E, E). Flax keeps a query, key and value kernel each (E, heads, head_dim) and an out kernel "
                   "(heads, head_dim, E): a port splits the packed matrix in three, transposes each and splits its "
                   "columns per head (jax_impl/network.py, attention_to_flax, the one place)",
                   _attention_packing),
        Convention("attention-mask-polarity", "what step 0 reads through a boolean mask whose row 0 is (True, False), "
                   "with q = k = v = x = (1, 3): 1 if True means may attend, 3 if it means masked out",
                   {"torch nn.MultiheadAttention": 3.0, "torch F.scaled_dot_product_attention": 1.0,
                    "flax.linen.dot_product_attention": 1.0, "jax.nn.dot_product_attention": 1.0},
                   "a scenario holds no boolean mask, only `causal`, which each mirror builds in its own polarity: "
                   "the reference sets the logits above the diagonal to −∞, torch's mirror passes the float mask "
                   "nn.Transformer.generate_square_subsequent_mask, the JAX mirror softmax(where=tril). Inside torch "
                   "the two APIs disagree: nn.MultiheadAttention's True masks out, scaled_dot_product_attention's "
                   "(and Flax's) True lets through",
                   _attention_mask_polarity),
        Convention("attention-softmax-precision", "float64 attention of 3 steps: within 1e-12 of float64 arithmetic?",
                   {"numpy": True, "torch F.scaled_dot_product_attention": True,
                    "flax.linen.dot_product_attention": True, "jax.nn.dot_product_attention": False,
                    "jax_impl attention": True},
                   "float64 throughout. jax.nn.dot_product_attention computes its softmax in float32 whatever the "
                   "input's dtype (its source: \"always carried out in fp32\"), so a float64 model built on it "
                   "differs from torch's by ~1e-8; the JAX mirror writes the softmax with jax.nn.softmax instead",
                   _attention_softmax_precision),
        Convention("attention-default-init", "a fresh attention layer of width E = 256: (its query weights' "
                   "standard deviation × √E, its q/k/v biases all 0)",
                   {"torch nn.MultiheadAttention": (0.7, True), "flax.linen.MultiHeadDotProductAttention": (1.0, True)},
                   "the scenario's weights, given. torch draws in_proj_weight (3E, E) with xavier_uniform over the "
                   "packed matrix, std √(2/(E + 3E)) = 0.71/√E; Flax's lecun_normal gives each kernel std 1/√E: "
                   "the two start from differently scaled attention",
                   _attention_init),
        Convention("attention-key-bias-gradient", "self-attention's key bias under a random upstream gradient: is its "
                   "gradient 0 up to rounding?",
                   {"numpy": True, "torch nn.MultiheadAttention": True, "jax_impl attention": True},
                   "in every framework, as it must be: adding b_k to every key adds q·b_k to each logit of a query's "
                   "row, which the softmax removes, so the loss does not depend on b_k. What each framework computes "
                   "for it is rounding noise, and Adam, RMSprop and Adagrad divide that noise by its own size into "
                   "steps of up to lr: trained under them, the key biases of two frameworks drift apart by rounding "
                   "scaled up (the built-in transformer trains with SGD; a bias before a batch norm behaves alike)",
                   _key_bias_gradient),
        Convention("lstm-gate-order", "the gates in the order an LSTM stacks them, measured by which of the 24 orders "
                   "reproduces it (Flax: its input-side dense names)",
                   {"numpy": "i, f, g, o", "torch nn.LSTM": "i, f, g, o", "flax.linen.LSTMCell": "ii, if, ig, io"},
                   "torch's: one weight_ih_l0 (4H, F) with the input, forget, cell and output gates' rows in that "
                   "order (a course's NumPy LSTM often stacks i, f, o, g). Flax keeps one dense per gate, the input "
                   "side without bias and the hidden side with one: the JAX mirror splits the rows in torch's order "
                   "(jax_impl recurrent_to_flax) and keeps torch's two biases; exporting to Flax adds them",
                   _lstm_gate_order),
        Convention("gru-reset-gate", "where a GRU's reset gate multiplies: r ⊙ (W_hn·h + b_hn), after the hidden "
                   "matmul, or W_hn·(r ⊙ h) + b_hn before it",
                   {"numpy": "after the hidden matmul", "torch nn.GRU": "after the hidden matmul",
                    "flax.linen.GRUCell": "after the hidden matmul"},
                   "torch's, which Flax's GRUCell shares (measured here: b_hn is inside the reset). The original "
                   "GRU paper and Keras' reset_after=False apply it before; Flax folds the r and z biases of the "
                   "two sides into one, torch keeps both",
                   _gru_reset_gate),
        Convention("lstm-state-order", "the state an LSTM returns after a sequence: where h (the output's last step) "
                   "sits", {"torch nn.LSTM": "(h, c)", "flax.linen.RNN(LSTMCell)": "(c, h)"},
                   "a scenario holds no state (h_0 = c_0 = 0, the output is every h_t): torch returns (output, (h_n, "
                   "c_n)), Flax's carry is (c, h), so a port that unpacks `h, c = carry` takes the cell state",
                   _lstm_state_order),
        Convention("recurrent-default-init", "a fresh LSTM: (its biases all 0, its recurrent kernel orthogonal)",
                   {"torch nn.LSTM": (False, False), "flax.linen.LSTMCell": (True, True)},
                   "the scenario's weights, given. torch draws every weight and bias from uniform(±1/√H); Flax's "
                   "LSTMCell uses lecun_normal on the input, orthogonal on the hidden state and zero biases: the two "
                   "start from different functions",
                   _recurrent_init),
        Convention("cross-entropy-ignore-index", "cross-entropy over two rows labelled 1 and −100 (torch's "
                   "ignore_index): what the −100 row does",
                   {"numpy": "left out", "torch F.cross_entropy": "left out",
                    "optax softmax_cross_entropy_with_integer_labels": "nan", "jax_impl cross_entropy": "left out"},
                   "torch's: a class index of −100 leaves its row (a padded step of a sequence) out of the sum and "
                   "the mean, by default, without being asked. optax has no ignore_index: −100 indexes out of range "
                   "and gives NaN; the JAX mirror masks those rows and divides by the rows it kept",
                   _ignore_index),
        Convention("relu-backward-non-finite",
                   "relu's backward at z = (-1, 0, 2) for an upstream gradient of inf, then of nan",
                   {fw: (("0.0", "0.0", "inf"), ("0.0", "0.0", "nan")) for fw in ("numpy", "torch", "jax")},
                   "as torch and JAX: a unit that is off passes 0 back whatever arrives (a select, not inf·0 = nan), "
                   "so a diverging run stays comparable",
                   {fw: (lambda fw=fw: _relu_backward_non_finite(fw)) for fw in ("numpy", "torch", "jax")}),
        Convention("sigmoid-saturation", "sigmoid at -1000 and +1000: (value, derivative), no NaN, no warning",
                   {"numpy": ((0.0, 0.0), (1.0, 0.0)), "torch": ((0.0, 0.0), (1.0, 0.0)),
                    "jax": ((0.0, 0.0), (1.0, 0.0))},
                   "a form that never overflows: e = exp(-|z|), then 1/(1+e) or e/(1+e)",
                   {fw: (lambda probe=probe: tuple(probe("sigmoid", x) for x in (-1000.0, 1000.0)))
                    for fw, probe in (("numpy", _saturation_numpy), ("torch", _saturation_torch),
                                      ("jax", _saturation_jax))}),
        Convention("tanh-saturation", "tanh at -1000 and +1000: (value, derivative)",
                   {"numpy": ((-1.0, 0.0), (1.0, 0.0)), "torch": ((-1.0, 0.0), (1.0, 0.0)),
                    "jax": ((-1.0, 0.0), (1.0, 0.0))},
                   "np.tanh, and 1 - tanh² for the derivative",
                   {fw: (lambda probe=probe: tuple(probe("tanh", x) for x in (-1000.0, 1000.0)))
                    for fw, probe in (("numpy", _saturation_numpy), ("torch", _saturation_torch),
                                      ("jax", _saturation_jax))}),
        Convention("default-dtype", "the dtype of a new float array",
                   {"torch": "float32", "jax": "float32"},
                   "float64 by default, set explicitly everywhere; JAX computes in float64 only inside "
                   "jax.enable_x64(True), which backproof scopes to each run",
                   {"torch": lambda: _default_dtype("torch"), "jax": lambda: _default_dtype("jax")}),
        Convention("mse-mismatched-shapes", "torch MSELoss, input (2, 1) against target (2,): (value, warned)",
                   {"torch": (0.5, True)},
                   "targets must be (n, out), validated at load: the (2, 2) broadcast averages every output "
                   "against every target, giving 0.5 where the row-wise loss is 0",
                   {"torch": _mse_mismatched_shapes}),
        Convention("loss-reduction", "(sse, half_sse, mse) of Y = [[1, 2], [3, 4]] against T = 0: "
                   "sum, ½·sum, and the mean over all n·out elements",
                   {"numpy": (30.0, 15.0, 7.5), "torch": (30.0, 15.0, 7.5), "jax": (30.0, 15.0, 7.5)},
                   "written out in reference/losses.py; torch uses F.mse_loss with reduction 'sum' or 'mean'",
                   {fw: (lambda fw=fw: _losses(fw)) for fw in ("numpy", "torch", "jax")}),
        Convention("matmul-precision-default", "the default float32 matmul precision setting",
                   {"torch": "highest", "jax": "None"},
                   "not relied on: every run pins the precision (next row). JAX's None means DEFAULT, "
                   "which on a GPU allows TF32 and on a TPU bfloat16 passes; on this CPU both compute in float32",
                   {"torch": lambda: _matmul_precision("torch"), "jax": lambda: _matmul_precision("jax")}),
        Convention("matmul-precision-pinned",
                   "inside a run: the settings at each torch matmul, with the user's global set to 'medium' "
                   "(and that global afterwards); the precision of each dot in the JAX step (and the global "
                   "afterwards)",
                   {"torch": ((("highest", "ieee", "ieee"),), "medium"), "jax": (("HIGHEST",), "None")},
                   "runs pin the highest precision and restore the user's settings: torch_impl.precision() sets "
                   "set_float32_matmul_precision('highest') and fp32_precision 'ieee' for cuBLAS and cuDNN (no "
                   "TF32); jax_impl.precision() enters jax.default_matmul_precision('highest'), scoped",
                   {"torch": _torch_precision_in_run, "jax": _jax_precision_in_run}),
        Convention("rmsprop-defaults", "RMSprop's default smoothing constant and where eps goes: "
                   "(α, eps outside or inside the square root), measured from steps",
                   {"numpy": (0.99, "outside"), "torch RMSprop": (0.99, "outside"), "optax.rmsprop": (0.9, "inside")},
                   "torch's: v ← α·v + (1 − α)·g², p ← p − lr·g/(√v + eps). The JAX mirror passes "
                   "decay=alpha and eps_in_sqrt=False to optax.scale_by_rms; scenario rmsprop-defaults-2-3-1 "
                   "shows the first step under optax's own defaults",
                   {"numpy": lambda: _rmsprop_defaults("numpy"), "torch RMSprop": lambda: _rmsprop_defaults("torch"),
                    "optax.rmsprop": lambda: _rmsprop_defaults("jax")}),
        Convention("adagrad-defaults", "Adagrad's first step under each library's defaults, lr 0.1, from p = 1: "
                   "(p after g = 1, p after g = 0)",
                   {"numpy": (0.9, 1.0), "torch Adagrad": (0.9, 1.0), "optax.adagrad": (0.904653745, 1.0)},
                   "torch's: the sum of squares starts at initial_accumulator_value = 0, p ← p − lr·g/(√s + ε) with "
                   "ε = 1e-10 outside the root. optax.adagrad starts the sum at 0.1 and puts ε = 1e-7 inside: the "
                   "JAX mirror writes torch's rule as its own optax transformation (jax_impl adagrad)",
                   _adagrad_defaults),
        Convention("adamw-default-weight-decay", "AdamW's default weight decay λ, measured from one step",
                   {"torch AdamW": 0.01, "optax.adamw": 0.0001},
                   "torch's 1e-2 when a scenario gives none; every implementation is passed λ explicitly",
                   {"torch AdamW": lambda: _adamw_default_decay("torch"),
                    "optax.adamw": lambda: _adamw_default_decay("jax")}),
        Convention("adam-weight-decay-coupling", "p after one step from p = 1, g = 0, lr = 0.1, λ = 0.1: "
                   "coupled L2 (λ·p added to the gradient, then normalised by Adam) against decoupled decay",
                   {"numpy adam": 0.9, "torch Adam(weight_decay)": 0.9, "torch AdamW": 0.99,
                    "optax chain(add_decayed_weights, scale_by_adam)": 0.9, "optax.adamw": 0.99},
                   "both, as torch: adam couples (optax.add_decayed_weights before scale_by_adam), adamw "
                   "decouples (optax.adamw)",
                   _decay_coupling),
        Convention("adam-bias-correction-precision", "float32: p after Adam's first step from p = 0, g = 1, "
                   "lr = 1 (exactly −1/(1 + 1e-8), which rounds to −1)",
                   {"numpy": -1.0, "torch Adam": -0.999999881, "optax.adam": -0.999993324},
                   "torch's order of operations, with the bias corrections 1 − βᵗ in Python floats (float64). "
                   "optax computes 1 − β₂ᵗ in float32 (β₂ = 0.999 rounds to 0.99900001), 56 ulp off at t = 1: a "
                   "few ulp per step that a long float32 Adam run amplifies (spiral-2-16-3-adam: 7e-3 after 300 "
                   "epochs, within the rounding noise floor, see training). Nothing to configure in optax",
                   _adam_first_step_float32),
        Convention("cross-entropy-reduction-and-targets",
                   f"softmax cross-entropy of logits {LOGITS} against classes {CLASSES}: (shape returned, values)",
                   {"numpy": ("()", (0.813933054,)), "torch F.cross_entropy(indices)": ("()", (0.813933054,)),
                    "torch F.cross_entropy(probabilities)": ("()", (0.813933054,)),
                    "optax softmax_cross_entropy_with_integer_labels": ("(2,)", (0.16984602, 1.458020088)),
                    "optax softmax_cross_entropy(one-hot)": ("(2,)", (0.16984602, 1.458020088))},
                   "the mean over rows, as torch; torch takes class indices or probability rows in one "
                   "function, optax needs the integer-label function or one-hot rows and does not reduce: "
                   "the JAX mirror takes jnp.mean",
                   _cross_entropy),
        Convention("label-smoothing-placement", "cross-entropy of the same logits and classes with label "
                   "smoothing 0.1: an argument of torch's loss, a separate optax.smooth_labels step on one-hot labels",
                   {"numpy": 0.88059972, "torch F.cross_entropy(label_smoothing=0.1)": 0.88059972,
                    "optax.smooth_labels + softmax_cross_entropy": 0.88059972},
                   "T' = (1 − ε)·T + ε/K, written in reference/losses.py: the same number either way",
                   _label_smoothing),
        Convention("same-padding-even-kernel", "padding \"same\" with a kernel of 2 over 5 inputs, stride 1: "
                   "(pad before, output length); the one pad an even kernel needs goes after",
                   {"numpy": (0, 5), "torch padding=\"same\"": (0, 5), "jax lax \"SAME\"": (0, 5)},
                   "torch's rule, dilation·(k − 1) split with the odd one after (reference/registry.py "
                   "same_padding), which lax's \"SAME\" matches at stride 1; torch refuses \"same\" at stride 2",
                   functools.partial(_conv_probe, size=5, kernel=2, stride=1)),
        Convention("same-padding-stride-2", f"ResNet's stem, kernel {STEM['kernel']} stride {STEM['stride']} over "
                   f"{STEM['size']}: (pad before, output length)",
                   {"numpy": (3, 112), "torch padding=3": (3, 112), "jax lax \"SAME\"": (2, 112),
                    "jax lax ((2, 3),)": (2, 112)},
                   "the scenario's pads as written (torch's padding=3), passed to lax as explicit pairs. lax's "
                   "\"SAME\" gives the same output length but pads (2, 3): every window starts one input later "
                   "and every output differs (flax #2993); reproducing lax's \"SAME\" in torch takes F.pad "
                   "(2, 3), not a padding= argument (built-in conv-stride2-stem)",
                   functools.partial(_conv_probe, size=STEM["size"], kernel=STEM["kernel"], stride=STEM["stride"])),
        Convention("conv-kernel-layout", "the weight of a conv from 3 to 8 channels with a 5×4 kernel: its shape",
                   {"torch nn.Conv2d": (8, 3, 5, 4), "flax.nnx.Conv": (5, 4, 3, 8), "jax_impl.to_flax": (5, 4, 3, 8)},
                   "torch's OIHW is canonical, inputs NCHW; the JAX mirror holds Flax's HWIO with NHWC inputs, "
                   "converted in jax_impl/network.py (TO_FLAX_KERNEL, to_nhwc, to_nchw) and nowhere else",
                   _kernel_layout),
        Convention("flatten-order", "a (C, H, W) = (2, 2, 3) map numbered in NCHW order, flattened: which number "
                   "lands at each position",
                   {"torch nn.Flatten": tuple(range(12)),
                    "jax reshape of the NHWC map": (0, 6, 1, 7, 2, 8, 3, 9, 4, 10, 5, 11),
                    "jax_impl flatten": tuple(range(12))},
                   "torch's (C, H, W) order: the JAX mirror moves channels first, then reshapes. A port that "
                   "flattens the NHWC map as it is must permute the next Linear's input columns: kernel rows "
                   "W[:, p] with p the jax-reshape order above (tools/mutations.py flatten-channels-last plants it)",
                   _flatten_order),
        Convention("max-pool-ties", "∂ max / ∂ each element of a 2×2 window of four equal values (row-major)",
                   {"numpy": (1.0, 0.0, 0.0, 0.0), "torch nn.MaxPool2d": (1.0, 0.0, 0.0, 0.0),
                    "jax lax.reduce_window(max)": (1.0, 0.0, 0.0, 0.0)},
                   "the whole gradient to the first maximum in the window's row-major order, as torch (argmax's "
                   "first); sending it to every tied element would count it four times",
                   _max_pool_ties),
        Convention("avg-pool-count-include-pad", "the corner of a 2×2 average pool, stride 1, padding 1, over a "
                   "2×2 map of ones",
                   {"numpy": 0.25, "numpy count_include_pad=false": 1.0, "torch nn.AvgPool2d": 0.25,
                    "torch nn.AvgPool2d(count_include_pad=False)": 1.0, "flax.linen.avg_pool": 0.25,
                    "flax.linen.avg_pool(count_include_pad=False)": 1.0},
                   "count_include_pad true by default, as torch and Flax: the window's zeros of padding count in "
                   "the divisor; the scenario's count_include_pad says otherwise",
                   _avg_pool_padding),
        Convention("linear-default-init", f"a default {FAN_IN}→{FAN_OUT} layer: (std·√fan_in, every |w| ≤ "
                   "1/√fan_in, how the bias starts)",
                   {"torch nn.Linear": (0.6, True, "uniform ±1/√fan_in"),
                    "jax lecun_normal": (1.0, False, "no bias initializer"),
                    "flax.nnx.Linear": (1.0, False, "zeros")},
                   "none: every scenario carries its weights, so no initialiser runs. A port that re-initialises "
                   "gets U(±1/√fan_in) weights and biases in torch but a truncated normal of std 1/√fan_in "
                   "(LeCun) and zero biases in Flax: \"the same model\" starts elsewhere",
                   _default_init),
    )


REGISTRY = None


def registry():
    """The rows, built on first use (so importing backproof imports no framework)."""
    global REGISTRY
    if REGISTRY is None:
        REGISTRY = _registry()
    return REGISTRY


def table(hints=False):
    """The registry as Markdown lines, as the docs show it. hints: mark the values that need a library this
    installation lacks (Flax's column), with the line that installs it."""
    lines = ["| id | what | values | reference's choice |", "|---|---|---|---|"]
    missing = flax_missing_hint() if hints else ""
    for row in registry():
        values = "; ".join(f"{k}: {v}" + (f" (documented; {missing})" if missing and k.startswith("flax") else "")
                           for k, v in row.values.items())
        lines.append(f"| `{row.id}` | {row.what} | {values} | {row.reference} |")
    return lines
