"""The generated built-in scenarios: drawn from a stated seed, or derived from another built-in.

    python -m tools.scenarios            # rewrite them under backproof/scenarios/

Each function returns the scenario as a dict. Fields that are not generated (the pinned
``expected`` values and their errata) are kept from the file on disk; tests/test_scenarios.py
regenerates every generated field and fails when a file no longer matches its recipe, so the
``init`` block of a scenario is a claim that is checked, not a comment.
"""

import json
import math
import sys
from pathlib import Path

import numpy as np

FOLDER = Path(__file__).resolve().parent.parent / "backproof" / "scenarios"
KEPT = ("expected", "errata", "aliases", "node_names")      # written by hand, never regenerated


def torch_style_layer(rng, fan_in, fan_out, activation):
    """nn.Linear's default: weight and bias uniform in ±1/√fan_in (drawn with NumPy, weight then bias)."""
    bound = 1.0 / math.sqrt(fan_in)
    return {"weight": rng.uniform(-bound, bound, (fan_out, fan_in)).tolist(),
            "bias": rng.uniform(-bound, bound, fan_out).tolist(), "activation": activation}


def spiral():
    """CS231n's toy spiral: 3 classes of 20 points in 2-D, a 2-16-3 ReLU network, cross-entropy, Adam."""
    seed, per_class, classes, hidden, noise = 0, 20, 3, 16, 0.2
    rng = np.random.default_rng(seed)
    inputs, targets = [], []
    for k in range(classes):
        radius = np.linspace(0.0, 1.0, per_class)
        angle = np.linspace(4.0 * k, 4.0 * (k + 1), per_class) + rng.standard_normal(per_class) * noise
        inputs += np.column_stack([radius * np.sin(angle), radius * np.cos(angle)]).tolist()
        targets += [k] * per_class
    layers = [torch_style_layer(rng, 2, hidden, "relu"), torch_style_layer(rng, hidden, classes, "identity")]
    return {
        "name": "spiral-2-16-3-adam",
        "description": "A 3-class spiral (CS231n's toy data set, 20 points per class), Dense(2,16), relu, "
                       "Dense(16,3) logits; cross-entropy on class indices; Adam (lr 0.05, weight decay 5e-4, "
                       "coupled as torch's Adam), 300 full-batch epochs.",
        "source": "the spiral of CS231n's 'Putting it together: minimal neural network case study', redrawn "
                  "from the seed below; not from the posts",
        "dtype": "float64",
        "init": {
            "rng": "numpy.random.default_rng", "seed": seed,
            "data": f"for k in 0..2: r = linspace(0, 1, {per_class}); θ = linspace(4k, 4(k+1), {per_class}) + "
                    f"{noise}·standard_normal({per_class}); x = (r·sin θ, r·cos θ), class k",
            "distribution": "uniform(±1/√fan_in), nn.Linear's default, drawn after the data",
            "order": ["data noise", "layers[0].weight", "layers[0].bias", "layers[1].weight", "layers[1].bias"],
            "generator": "tools/scenarios.py: spiral()",
        },
        "layers": layers,
        "loss": "cross_entropy",
        "inputs": inputs,
        "targets": targets,
        "optimizer": {"name": "adam", "lr": 0.05, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 5e-4},
        "train": {"epochs": 300},
    }


def derived(base, name, description, **changes):
    """A copy of built-in ``base`` with ``changes`` (and no expected values, aliases or errata of its own)."""
    document = json.loads((FOLDER / f"{base}.json").read_text(encoding="utf-8"))
    for key in KEPT:
        document.pop(key, None)
    document.update(name=name, description=description,
                    source=f"derived from the built-in {base} by tools/scenarios.py", **changes)
    return document


def xor_nesterov():
    return derived("xor-2-3-1-tanh", "xor-2-3-1-tanh-nesterov",
                   "Post 003's XOR network and weights, trained with SGD with Nesterov momentum 0.9 "
                   "(lr 0.1, per-sample) for 500 epochs instead of plain SGD for 10,000.",
                   optimizer={"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True},
                   train={"epochs": 500, "batch_size": 1})


def mixed_rmsprop():
    return derived("mixed-3-4-3-2", "mixed-3-4-3-2-rmsprop",
                   "The mixed leaky_relu/tanh/identity network trained with centered RMSprop "
                   "(lr 0.01, α 0.99, momentum 0.5, weight decay 1e-3) for 200 full-batch epochs.",
                   optimizer={"name": "rmsprop", "lr": 0.01, "alpha": 0.99, "eps": 1e-8, "momentum": 0.5,
                              "centered": True, "weight_decay": 1e-3},
                   train={"epochs": 200})


def rmsprop_defaults():
    return derived("xor-2-3-1-tanh", "rmsprop-defaults-2-3-1",
                   "Post 003's XOR network, one RMSprop step with torch's defaults (α 0.99, eps outside the "
                   "square root). The expected block pins what optax.rmsprop's own defaults (decay 0.9, eps "
                   "inside) would give instead, as an erratum: a convention difference shown, not a failure.",
                   optimizer={"name": "rmsprop", "lr": 0.01}, train=None)


def softmax():
    """A softmax *layer* (not a loss): the Jacobian-vector product by hand."""
    return {
        "name": "softmax-2-3-3",
        "description": "Dense(2,3), tanh, Dense(3,3), softmax; mean squared error against one-hot rows; SGD "
                       "lr 0.5. softmax's backward is not elementwise: dz = a ⊙ (da − Σ da ⊙ a).",
        "source": "written for backproof; the worked values in expected were computed once by the reference "
                  "and pinned",
        "dtype": "float64",
        "layers": [
            {"weight": [[0.5, -0.3], [0.2, 0.8], [-0.6, 0.4]], "bias": [0.1, -0.2, 0.05], "activation": "tanh"},
            {"weight": [[0.7, -0.5, 0.3], [-0.2, 0.6, 0.1], [0.4, 0.3, -0.8]], "bias": [0.0, 0.1, -0.1],
             "activation": "softmax"},
        ],
        "loss": "mse",
        "inputs": [[1.0, 0.5], [-0.5, 2.0]],
        "targets": [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]],
        "optimizer": {"name": "sgd", "lr": 0.5},
    }


RECIPES = (spiral, xor_nesterov, mixed_rmsprop, rmsprop_defaults, softmax)


def generated(recipe):
    """The recipe's document, with the hand-written fields of the file on disk kept (in the recipe's order)."""
    document = {key: value for key, value in recipe().items() if value is not None}
    path = FOLDER / f"{document['name']}.json"
    if path.exists():
        on_disk = json.loads(path.read_text(encoding="utf-8"))
        document.update({key: on_disk[key] for key in KEPT if key in on_disk})
    return document


def text(document, indent=0):
    """The file's text: two-space indent, a list of numbers (or of lists of numbers) on one line."""
    pad, inner = "  " * indent, "  " * (indent + 1)
    if isinstance(document, dict):
        items = [f"{inner}{json.dumps(key)}: {text(value, indent + 1)}" for key, value in document.items()]
        body = "{\n" + ",\n".join(items) + f"\n{pad}}}"
        return body + ("\n" if indent == 0 else "")
    if isinstance(document, list) and all(not isinstance(item, dict) for item in document):
        return json.dumps(document, ensure_ascii=False)
    if isinstance(document, list):
        return "[\n" + ",\n".join(f"{inner}{text(item, indent + 1)}" for item in document) + f"\n{pad}]"
    return json.dumps(document, ensure_ascii=False)


if __name__ == "__main__":
    for recipe in RECIPES:
        document = generated(recipe)
        (FOLDER / f"{document['name']}.json").write_text(text(document), encoding="utf-8")
        print(f"wrote backproof/scenarios/{document['name']}.json")
    sys.exit(0)
