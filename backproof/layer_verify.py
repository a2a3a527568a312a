"""Homework mode: one layer's hand-written backward pass, checked against autodiff and finite differences.

A course derives gradients one layer at a time (``affine_backward``, ``relu_backward``, ``conv_backward_naive``,
``batchnorm_backward``) and checks each with a random upstream gradient ``dout``. ``verify_layer`` does that for any
layer of a scenario (every type in ``reference.registry.LAYER_TYPES``), or for its activation:

    the layer's input x      what reaches layer i in the scenario's forward pass (its parameters are the scenario's)
    dout                     standard normal, seeded, shaped like the layer's output
    the truth                the vector-Jacobian product ∂⟨out, dout⟩/∂(x, weight, bias) from torch autograd and JAX
                             (each runs the one-layer network through its own ``run_step``, with the loss
                             Σ (out − t)² and t = out − dout/2, whose gradient at the output is dout), and central
                             finite differences of ⟨out, dout⟩ through the reference's forward pass

Two signatures for the user's code:

    backward(x, params, dout) -> {"x": dx, "weight": dW, "bias": db}          params: {"weight": W, "bias": b}
    forward(x, *params, **config) -> (out, cache);  backward(dout, cache) -> (dx, dW, db)       (course style)

Arrays are in torch's layouts (NCHW, weight (out, in, kH, kW)); config is the layer's hyperparameters (and a batch
norm's running statistics). The course style's ``out`` is checked too: a wrong forward is named as such.
"""

import dataclasses
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import reference
from reference import Scenario
from reference.gradcheck import central_differences
from reference.layers import Activation, build
from reference.losses import LOSSES
from reference.registry import LAYER_TYPES

from .compare import Comparison, compare_arrays
from .diagnose import diagnose
from .scenario_file import as_scenario


class LayerVerifyError(ValueError):
    """The layer, part or function cannot be checked (one line)."""


@dataclass
class LayerVerifyResult:
    scenario: str
    layer: int
    part: str                       # "layer" or "activation"
    description: str                # what was checked, e.g. "layers[1] conv2d 4@3×3 on x (2, 1, 8, 8)"
    oracles: list
    checks: list                    # [Comparison]: tensor "dx", "dweight", "dbias" or "out", a = yours, b = oracle
    diagnoses: list = field(default_factory=list)
    skipped: list = field(default_factory=list)     # [Skipped]: the frameworks asked for that are not installed

    @property
    def ok(self):
        return bool(self.checks) and all(c.ok for c in self.checks)

    @property
    def verdict(self):
        if self.ok:
            return f"verdict: OK — {self.description}: yours agrees with {', '.join(self.oracles)}"
        wrong = sorted({c.tensor for c in self.checks if not c.ok})
        return f"verdict: FAIL — {self.description}: {', '.join(wrong) or 'nothing compared'} disagree"

    def __str__(self):
        lines = [f"== {self.scenario}: {self.description} ==", ""]
        from .compare import TOLERANCES
        from .render import fmt_delta
        width = max([8] + [len(c.tensor) for c in self.checks])     # dself_attn.in_proj_weight is long
        for c in self.checks:
            mark = "ok  " if c.ok else "FAIL"
            where = "" if c.ok else f" at {list(c.worst_index)}"
            floor = TOLERANCES["float64"]["finite_difference" if c.b == "finite differences" else "step"][0]
            lines.append(f"   {mark} {c.tensor:<{width}} vs {c.b:<20} max |Δ| {fmt_delta(c.max_abs, floor)}{where}"
                         + (f"  {c.problem}" if c.problem else ""))
        lines += [f"   {s.framework} skipped: {s.reason}; {s.hint}" for s in self.skipped]
        if self.diagnoses:
            lines += ["", "   what kind of mistake:"] + [f"   - {d.parameter}: {d.text}" for d in self.diagnoses]
        return "\n".join(lines + ["", f"   {self.verdict}"])

    def __repr__(self):
        return f"<LayerVerifyResult {self.scenario} layers[{self.layer}] {self.part}: {'OK' if self.ok else 'FAIL'}>"


def layer_case(scenario, index, part="layer", seed=0, inputs="drawn"):
    """(one-layer Scenario, x, params, dout, out): layer ``index`` of ``scenario`` (its activation when part is
    "activation", as a layer that passes x through), its input x and a seeded dout.

    inputs: "drawn" (standard normal, seeded, shaped like what reaches the layer: no exact kink or tie, where finite
    differences are no oracle) or "scenario" (what the scenario's own forward pass gives the layer)."""
    scenario = as_scenario(scenario).with_dtype("float64")
    if not 0 <= index < len(scenario.layers):
        raise LayerVerifyError(f"{scenario.name}: layer {index} does not exist (it has layers 0 to "
                               f"{len(scenario.layers) - 1})")
    if part not in ("layer", "activation", "loss"):
        raise LayerVerifyError(f"part must be 'layer', 'activation' or 'loss', not {part!r}")
    if part == "loss" and index != len(scenario.layers) - 1:
        raise LayerVerifyError(f"{scenario.name}: the loss follows the last layer, {len(scenario.layers) - 1}, "
                               f"not {index}")
    if part == "layer" and scenario.layers[index].type == "embedding":
        raise LayerVerifyError(f"{scenario.name}: layers[{index}] is an embedding, whose inputs are indices with no "
                               f"gradient: check its weight's gradient with `backproof verify` on the whole network")
    if inputs not in ("drawn", "scenario"):
        raise LayerVerifyError(f"inputs must be 'drawn' or 'scenario', not {inputs!r}")
    rng = np.random.default_rng(seed)
    zs, acts = reference.forward(reference.Model(scenario), np.array(scenario.inputs))      # what reaches each layer
    spec = scenario.layers[index]
    if part == "loss":              # x: the network's output; the loss's gradient at it, for the scenario's targets
        x = np.array(acts[-1])
        x = rng.standard_normal(x.shape) if inputs == "drawn" else x
        identity = reference.LayerSpec(np.eye(x.shape[1]), None, type="linear")
        single = dataclasses.replace(scenario, name=f"{scenario.name}-loss", layers=(identity,), inputs=x, train=None,
                                     expected={}, aliases={}, node_names={}, errata=[],
                                     optimizer=reference.Optimizer.of("sgd", scenario.lr))
        out = np.asarray(LOSSES[scenario.loss][0](x, scenario.targets, **scenario.criterion.options()))
        return single, x, {}, np.ones(()), out
    if part == "activation":
        if spec.activation == "identity":
            raise LayerVerifyError(f"{scenario.name}: layers[{index}] has no activation (identity)")
        x = np.array(zs[index])
        x = rng.standard_normal(x.shape) if inputs == "drawn" else x
        spec = reference.LayerSpec(None, None, spec.activation, spec.negative_slope, "dropout", (("p", 0.0),),
                                   mask=np.ones(x.shape))
    else:
        x = np.array(scenario.inputs if index == 0 else acts[index - 1])
        x = rng.standard_normal(x.shape) if inputs == "drawn" else x
        spec = dataclasses.replace(spec, activation="identity")
    params = {key: np.array(value) for key, value in spec.parameters().items()}    # weight, bias, linear1.weight …
    out = _forward(spec, x)
    dout = rng.standard_normal(out.shape)
    # targets are rows (n, features) in every framework: a map is flattened (torch's order) after the layer, a sequence
    # (n, T, E) kept as it is (a flatten would move Flax's axes); and an optimizer takes no empty parameter list: a
    # layer without parameters gets an exact identity layer (x·I = x)
    sequence = LAYER_TYPES[spec.type].sequence and out.ndim == 3
    shape = out.shape if sequence else (out.shape[0], int(np.prod(out.shape[1:])))
    layers = (spec,) + ((reference.LayerSpec(None, None, type="flatten"),) if out.ndim > 2 and not sequence
                        else ()) + (() if params else (reference.LayerSpec(np.eye(shape[-1]), None, type="linear"),))
    targets = (out - dout / 2).reshape(shape)
    single = dataclasses.replace(scenario, name=f"{scenario.name}-layer{index}", layers=layers, inputs=x,
                                 targets=targets, loss="sse", train=None, expected={}, aliases={},
                                 node_names={}, errata=[], target_format="rows", label_smoothing=0.0,
                                 optimizer=reference.Optimizer.of("sgd", scenario.lr), lr=scenario.lr)
    return single, x, params, dout, out


def _forward(spec, x, params=None):
    """The reference's forward pass of one layer (and its activation) on x."""
    params = params or {}
    layer = build(spec, params)
    z = layer.forward(np.array(x))
    return Activation(spec.activation, spec.negative_slope).forward(z)


def true_gradients(single, part, frameworks=("torch", "jax")):
    """({oracle: {"x": dx, "weight": dW, …}}, [Skipped]): each installed framework's autodiff of the one-layer scenario
    (its gradient at the output is dout), and central finite differences (``_finite_differences``)."""
    from .frameworks import Skipped, implementation
    truths, skipped = {}, []
    for framework in frameworks:
        module = implementation(framework)
        if isinstance(module, Skipped):
            skipped.append(module)          # a missing framework is skipped, as verify does; the others decide
            continue
        trace = module.run_step(single)
        truths[framework] = {"x": trace["grad.inputs"], **{key.removeprefix("layers.0."): trace[f"grad.{key}"]
                                                          for key in single.parameters() if key.startswith("layers.0.")
                                                          and part != "loss"}}
    truths["finite differences"] = _finite_differences(single, part)
    return truths, skipped


def _finite_differences(single, part):
    """Central differences (reference/gradcheck.py, with its calibrated step) of ⟨out, dout⟩ through the reference's
    forward pass, or of the loss itself for the loss part -> {"x": …, "weight": …, …}."""
    x = np.array(single.inputs)
    if part == "loss":
        loss, options = LOSSES[single.loss][0], single.criterion.options()
        return central_differences(lambda probe: loss(probe["x"], single.targets, **options), {"x": x})
    spec = single.layers[0]
    out = _forward(spec, x)
    dout = (2 * (out.reshape(single.targets.shape) - single.targets)).reshape(out.shape)     # = dout
    params = {key.removeprefix("layers.0."): np.array(value) for key, value in single.parameters().items()
              if key.startswith("layers.0.")}
    return central_differences(lambda probe: float(np.sum(_forward(spec, probe["x"], probe) * dout)),
                               {"x": x, **params})


def verify_layer(backward: "Callable[..., Any] | str", scenario: "Scenario | str | os.PathLike[str]", layer: int,
                 part: str = "layer", forward: "Callable[..., Any] | str | None" = None, seed: int = 0,
                 frameworks: "Iterable[str]" = ("torch", "jax"), inputs: str = "drawn",
                 timeout: float = 60.0) -> "LayerVerifyResult":
    """Check a hand-written backward pass of ``scenario``'s layer ``layer`` (or of its activation) -> LayerVerifyResult.

    backward: ``backward(x, params, dout) -> {"x": dx, "weight": dW, "bias": db}``; or, with ``forward`` given, the
    course style ``forward(x, *params, **config) -> (out, cache)`` and ``backward(dout, cache) -> (dx, dW, db)``.
    Callables are called in this process; "MODULE.py:FUNCTION" (and ``forward`` as a function name in that file) runs
    in a child process with a hard ``timeout`` (backproof/sandbox.py), as ``backproof verify-layer`` always does.
    """
    single, x, params, dout, out = layer_case(scenario, layer, part, seed, inputs)
    spec = single.layers[0]
    config = {**spec.hyper, **{key: np.array(value) for key, value in (("running_mean", spec.running_mean),
                                                                          ("running_var", spec.running_var))
                               if value is not None}}
    if part == "activation":
        config = {"negative_slope": spec.negative_slope} if spec.activation == "leaky_relu" else {}
    names = ["x"] + list(params)
    checks = []
    def call(function, *args, **kwargs):
        try:
            return function(*args, **kwargs)
        except Exception as exc:  # the user's code failing: one line naming it
            name = getattr(function, "__name__", "the function")
            raise LayerVerifyError(f"{name} raised {type(exc).__name__}: {' '.join(str(exc).split())[:300]}") \
                from None

    targets = (single.class_indices() if single.target_format == "indices" else np.array(single.targets))
    if part == "loss" and not isinstance(backward, str):
        answer = call(backward, np.array(x), targets)
        if not isinstance(answer, (tuple, list)) or len(answer) != 2:
            raise LayerVerifyError(f"{getattr(backward, '__name__', 'the function')} must return (loss, dx), the "
                                   f"course's softmax_loss(x, y) signature")
        checks.append(compare_arrays("out", "yours", np.asarray(answer[0], np.float64), "reference forward", out,
                                     "float64"))
        yours = {"x": answer[1]}
    elif isinstance(backward, str):                   # the user's file, in a child process
        from .sandbox import SandboxError, run
        arrays = {"x": x, "dout": dout, "targets": targets, **{f"param:{k}": v for k, v in params.items()}}
        plain = {key: (list(value) if isinstance(value, tuple) else
                       value.tolist() if isinstance(value, np.ndarray) else value) for key, value in config.items()}
        try:
            metadata, values = run("layer_backward", backward, arrays, timeout,
                                   {"forward": forward, "config": plain, "names": names, "loss": part == "loss"})
        except SandboxError as exc:
            raise LayerVerifyError(str(exc)) from None
        if "out" in values:
            checks.append(compare_arrays("out", "yours", values["out"].astype(np.float64), "reference forward", out,
                                         "float64"))
        yours = {name: values.get(f"d:{name}") for name in names}
    elif forward is None:
        answer = call(backward, np.array(x), {k: np.array(v) for k, v in params.items()}, np.array(dout))
        if not isinstance(answer, dict):
            raise LayerVerifyError(f"backward returned a {type(answer).__name__}, not a dict of "
                                   f"{', '.join(names)}")
        yours = {name: answer.get(name) for name in names}
    else:
        mine_out, cache = call(forward, np.array(x), *[np.array(v) for v in params.values()], **config)
        checks.append(compare_arrays("out", "yours", np.asarray(mine_out, np.float64), "reference forward", out,
                                     "float64"))
        answer = call(backward, np.array(dout), cache)
        answer = answer if isinstance(answer, (tuple, list)) else (answer,)
        if len(answer) != len(names):
            raise LayerVerifyError(f"backward returned {len(answer)} arrays; it must return {len(names)}: "
                                   f"d{', d'.join(names)}")
        yours = dict(zip(names, answer))
    truths, skipped = true_gradients(single, part, frameworks)
    for name in names:
        mine = yours[name]
        if mine is None:
            checks.append(Comparison(f"d{name}", "yours", "every oracle", float("inf"), float("inf"), False,
                                     "missing from what backward returned"))
            continue
        mine = np.asarray(mine, np.float64)
        for oracle, truth in truths.items():
            kind = "finite_difference" if oracle == "finite differences" else "step"
            checks.append(compare_arrays(f"d{name}", "yours", mine, oracle, np.asarray(truth[name]), "float64",
                                         kind=kind))
    wrong = [n for n in sorted({c.tensor[1:] for c in checks if not c.ok and c.tensor != "out"})
             if yours.get(n) is not None]
    autodiff = next(iter(truths.values()))
    canonical = {"x": "inputs", **{key: f"layers.0.{key}" for key in params}}     # diagnose's names, and back
    diagnoses = [dataclasses.replace(d, parameter=next(k for k, v in canonical.items() if v == d.parameter),
                                     text=d.text.replace("layer 0's", "the layer's").replace("z0", "z").replace("a0", "a"))
                 for d in diagnose({canonical[n]: yours[n] for n in wrong},
                                   {canonical[n]: autodiff[n] for n in names}, single, [canonical[n] for n in wrong])]
    shape = "×".join(map(str, x.shape))
    what = (f"layers[{layer}]'s activation {spec.activation}" if part == "activation"
            else f"the loss {single.loss} after layers[{layer}]" if part == "loss"
            else f"layers[{layer}] {single.layers[0].type}")
    return LayerVerifyResult(as_scenario(scenario).name, layer, part, f"{what} on x ({shape})",
                             list(truths), checks, diagnoses, skipped)

