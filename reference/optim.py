"""The optimizers, each written out by hand as a pure function with torch.optim's semantics.

Every update rule has the signature ``(params, grads, state, o) -> (params, state)``:
params and grads are dicts under canonical names, state is what the last call returned
(``{}`` before the first step), ``o`` is the scenario's ``Optimizer`` with every
hyperparameter. Nothing is changed in place. The state of each parameter uses torch's
names (``momentum_buffer``, ``exp_avg``, ``exp_avg_sq``, ``square_avg``, ``grad_avg``) and
counts its steps in ``step``.

λ is weight_decay, μ momentum, τ dampening, β₁, β₂ the betas, α RMSprop's smoothing
constant, ε eps, g the gradient and t the step number, from 1.
"""

import numpy as np


def sgd(params, grads, state, o):
    """torch.optim.SGD:
        g ← g + λ·p                                   (weight decay, coupled: part of the gradient)
        b ← g on the first step, else μ·b + (1 − τ)·g  (momentum buffer, only when μ > 0)
        g ← g + μ·b (Nesterov) or b
        p ← p − lr·g
    """
    if not o.momentum and not o.weight_decay:                  # plain SGD, no state: p ← p − lr·∂L/∂p
        return {name: p - o.lr * grads[name] for name, p in params.items()}, state
    new_params, new_state = {}, {}
    for name, p in params.items():
        g = grads[name]
        if o.weight_decay:
            g = g + o.weight_decay * p
        if o.momentum:
            b = state.get(name, {}).get("momentum_buffer")
            b = g.copy() if b is None else o.momentum * b + (1.0 - o.dampening) * g
            new_state[name] = {"momentum_buffer": b}
            g = g + o.momentum * b if o.nesterov else b
        new_params[name] = p - o.lr * g
    return new_params, new_state


def adam(params, grads, state, o, decoupled=False):
    """torch.optim.Adam (decoupled=False) and AdamW (decoupled=True):
        p ← p·(1 − lr·λ)            AdamW: decay the weight itself, apart from the gradient
        g ← g + λ·p                 Adam: weight decay is an L2 term added to the gradient
        m ← β₁·m + (1 − β₁)·g       exp_avg
        v ← β₂·v + (1 − β₂)·g²      exp_avg_sq
        m̂ = m / (1 − β₁ᵗ),  v̂ = v / (1 − β₂ᵗ)   bias corrections: m and v start at 0
        p ← p − lr·m̂ / (√v̂ + ε)
    """
    beta1, beta2 = o.betas
    new_params, new_state = {}, {}
    for name, p in params.items():
        g = grads[name]
        s = state.get(name, {"step": 0, "exp_avg": np.zeros_like(p), "exp_avg_sq": np.zeros_like(p)})
        t = s["step"] + 1
        if o.weight_decay and decoupled:
            p = p * (1.0 - o.lr * o.weight_decay)
        elif o.weight_decay:
            g = g + o.weight_decay * p
        m = beta1 * s["exp_avg"] + (1.0 - beta1) * g
        v = beta2 * s["exp_avg_sq"] + (1.0 - beta2) * g * g
        m_hat = m / (1.0 - beta1 ** t)
        v_hat = v / (1.0 - beta2 ** t)
        new_params[name] = p - o.lr * m_hat / (np.sqrt(v_hat) + o.eps)
        new_state[name] = {"step": t, "exp_avg": m, "exp_avg_sq": v}
    return new_params, new_state


def adamw(params, grads, state, o):
    """torch.optim.AdamW: Adam with decoupled weight decay (see ``adam``)."""
    return adam(params, grads, state, o, decoupled=True)


def rmsprop(params, grads, state, o):
    """torch.optim.RMSprop:
        g ← g + λ·p
        v ← α·v + (1 − α)·g²                         square_avg
        ḡ ← α·ḡ + (1 − α)·g                          grad_avg, only when centered
        d = √(v − ḡ²) + ε  (centered)  or  √v + ε      ε is added *outside* the square root
        b ← μ·b + g/d,  p ← p − lr·b   (μ > 0; b starts at 0)   or   p ← p − lr·g/d
    """
    new_params, new_state = {}, {}
    for name, p in params.items():
        g = grads[name]
        zeros = np.zeros_like(p)
        s = state.get(name, {"step": 0, "square_avg": zeros, "grad_avg": zeros, "momentum_buffer": zeros})
        if o.weight_decay:
            g = g + o.weight_decay * p
        v = o.alpha * s["square_avg"] + (1.0 - o.alpha) * g * g
        kept = {"step": s["step"] + 1, "square_avg": v}
        if o.centered:
            g_avg = o.alpha * s["grad_avg"] + (1.0 - o.alpha) * g
            d = np.sqrt(v - g_avg * g_avg) + o.eps
            kept["grad_avg"] = g_avg
        else:
            d = np.sqrt(v) + o.eps
        if o.momentum:
            b = o.momentum * s["momentum_buffer"] + g / d
            kept["momentum_buffer"] = b
            new_params[name] = p - o.lr * b
        else:
            new_params[name] = p - o.lr * g / d
        new_state[name] = kept
    return new_params, new_state


def adagrad(params, grads, state, o):
    """torch.optim.Adagrad:
        g ← g + λ·p
        s ← s + g²                                   sum, from initial_accumulator_value
        p ← p − lr/(1 + (t − 1)·η) · g/(√s + ε)      η is lr_decay; ε outside the square root
    """
    new_params, new_state = {}, {}
    for name, p in params.items():
        g = grads[name]
        s = state.get(name, {"step": 0, "sum": np.full_like(p, o.initial_accumulator_value)})
        t = s["step"] + 1
        if o.weight_decay:
            g = g + o.weight_decay * p
        total = s["sum"] + g * g
        new_params[name] = p - o.lr / (1.0 + (t - 1) * o.lr_decay) * g / (np.sqrt(total) + o.eps)
        new_state[name] = {"step": t, "sum": total}
    return new_params, new_state


# name -> (params, grads, state, o) -> (params, state)
OPTIMIZERS = {"sgd": sgd, "adam": adam, "adamw": adamw, "rmsprop": rmsprop, "adagrad": adagrad}


def update(params, grads, state, optimizer):
    """One step of ``OPTIMIZERS[optimizer.name]`` -> (new params, new state); changes nothing.

    state: ``{}`` before the first step, then what the last call returned.
    """
    check_shapes(params, grads)
    return OPTIMIZERS[optimizer.name](params, grads, state, optimizer)


def check_shapes(params, grads):
    """A gradient whose shape differs from its parameter's is refused by name: NumPy would otherwise
    broadcast (1, 3) − (3, 1) into a (3, 3) "update" without a word."""
    for name, value in params.items():
        if grads[name].shape != value.shape:
            raise ValueError(f"update: the gradient of {name} has shape {np.shape(grads[name])}, "
                             f"the parameter {value.shape}")
