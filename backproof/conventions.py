"""Where the frameworks' building blocks legitimately disagree: a registry, measured.

Each row documents one value per framework and the reference's choice. Every
documented value is also *measured* by calling the real framework function
(``probe``), and tests/test_conventions.py asserts the two are equal, so a
framework release that changes behaviour fails a test that names the row.
"""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Convention:
    id: str
    what: str
    values: dict                 # framework -> documented value (numbers, or short strings)
    reference: str               # the NumPy reference's choice, and why
    probes: dict = field(default_factory=dict, compare=False)   # framework -> zero-argument callable


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
        from torch_impl.network import LOSSES
        return tuple(float(LOSSES[name](torch.tensor(y), torch.tensor(t))) for name in names)
    import jax.numpy as jnp
    from jax_impl.network import LOSSES
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

    import torch_impl.network as implementation

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
    import torch_impl.network as implementation

    seen, after = torch_settings_at_each_linear(implementation.run_step, _probe_scenario())
    return (tuple(sorted(seen)), after)


def _jax_precision_in_run():
    """The precision of every dot in the step run_step compiles, and the global setting afterwards."""
    import re

    import jax

    import jax_impl.network as implementation

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
    )


REGISTRY = None


def registry():
    """The rows, built on first use (so importing backproof imports no framework)."""
    global REGISTRY
    if REGISTRY is None:
        REGISTRY = _registry()
    return REGISTRY


def table():
    """The registry as Markdown lines, as the README shows it."""
    lines = ["| id | what | values | reference's choice |", "|---|---|---|---|"]
    for row in registry():
        values = "; ".join(f"{k}: {v}" for k, v in row.values.items())
        lines.append(f"| `{row.id}` | {row.what} | {values} | {row.reference} |")
    return lines
