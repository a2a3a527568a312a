"""Backpropagation through time for one LSTM layer, written as a course's homework: torch's layout (weight_ih_l0 (4H, F)
with the gates i, f, g, o stacked, two biases), batch-first x (n, T, F), h_0 = c_0 = 0. Check it with

    backproof verify-layer examples/lstm_backward.py:lstm_backward lstm-gru-count-bits --layer 0
    backproof verify-layer examples/lstm_backward.py:lstm_backward_without_cell_path lstm-gru-count-bits --layer 0

The second forgets that the cell state carries gradient back to the earlier steps (dc_prev = dc ⊙ f): the check names
every parameter it gets wrong.
"""

import numpy as np


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def lstm_forward(x, params):
    """x (n, T, F) -> (every h_t (n, T, H), what the backward pass needs)."""
    w_ih, w_hh = params["weight_ih_l0"], params["weight_hh_l0"]
    b = params.get("bias_ih_l0", 0.0) + params.get("bias_hh_l0", 0.0)
    n, steps, _ = x.shape
    hidden = w_hh.shape[1]
    h, c = np.zeros((n, hidden)), np.zeros((n, hidden))
    caches, outputs = [], []
    for t in range(steps):
        a = x[:, t] @ w_ih.T + h @ w_hh.T + b
        i, f, g, o = sigmoid(a[:, :hidden]), sigmoid(a[:, hidden:2 * hidden]), np.tanh(a[:, 2 * hidden:3 * hidden]), \
            sigmoid(a[:, 3 * hidden:])
        c_prev, h_prev = c, h
        c = f * c + i * g
        h = o * np.tanh(c)
        caches.append((x[:, t], h_prev, c_prev, i, f, g, o, c))
        outputs.append(h)
    return np.stack(outputs, axis=1), caches


def _backward(x, params, dout, carry_cell_state):
    _, caches = lstm_forward(x, params)
    w_ih, w_hh = params["weight_ih_l0"], params["weight_hh_l0"]
    grads = {"x": np.zeros_like(x), "weight_ih_l0": np.zeros_like(w_ih), "weight_hh_l0": np.zeros_like(w_hh)}
    db = np.zeros(w_ih.shape[0])
    dh_next = dc_next = np.zeros((x.shape[0], w_hh.shape[1]))
    for t in reversed(range(x.shape[1])):
        x_t, h_prev, c_prev, i, f, g, o, c = caches[t]
        dh = dout[:, t] + dh_next
        dc = dh * o * (1 - np.tanh(c) ** 2) + (dc_next if carry_cell_state else 0.0)
        da = np.concatenate([dc * g * i * (1 - i), dc * c_prev * f * (1 - f), dc * i * (1 - g ** 2),
                             dh * np.tanh(c) * o * (1 - o)], axis=1)
        grads["weight_ih_l0"] += da.T @ x_t
        grads["weight_hh_l0"] += da.T @ h_prev
        db += da.sum(axis=0)
        grads["x"][:, t] = da @ w_ih
        dh_next, dc_next = da @ w_hh, dc * f
    if "bias_ih_l0" in params:
        grads["bias_ih_l0"] = grads["bias_hh_l0"] = db          # the two biases are added: the same gradient
    return grads


def lstm_backward(x, params, dout):
    """{"x": dx, "weight_ih_l0": …, "weight_hh_l0": …, "bias_ih_l0": …, "bias_hh_l0": …}: right."""
    return _backward(x, params, dout, carry_cell_state=True)


def lstm_backward_without_cell_path(x, params, dout):
    """The same with the cell state's path to earlier steps forgotten: dc starts from 0 at every step."""
    return _backward(x, params, dout, carry_cell_state=False)
