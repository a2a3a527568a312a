"""Homework mode: one layer's hand-written backward pass, right and wrong, in both signatures (backproof/layer_verify.py).

The right answers are the reference's own hand-derived layers (reference/layers.py), called as a student's code would
be; each wrong one is a mistake people make, and must be named at its argument (and diagnosed where the signature is
clear)."""

import json
from pathlib import Path

import numpy as np
import pytest

import backproof
from backproof.layer_verify import LayerVerifyError, layer_case, verify_layer
from backproof.testing import assert_layer_gradients
from conftest import NUMPY_ONLY, require
from reference.layers import Activation, build

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(NUMPY_ONLY, reason="the oracles are torch and JAX (finite differences alone: below)")


def reference_backward(scenario, index):
    """backward(x, params, dout) from the reference's own layer: the right answer, as a student would hand it in."""
    spec = backproof.load(scenario).layers[index]

    def backward(x, params, dout):
        layer = build(spec, params)
        layer.forward(x)
        dx = layer.backward(dout)
        return {"x": dx, **({"weight": layer.weight_grad} if "weight" in params else {}),
                **({"bias": layer.bias_grad} if "bias" in params else {})}
    return backward


RIGHT = [("spiral-2-16-3-adam", 1), ("cnn-1x8x8-strokes", 0), ("cnn-1x8x8-strokes", 1), ("cnn-1x8x8-strokes", 3),
         ("batchnorm-mlp-3-8-2", 1), ("layernorm-gelu-4-6-3", 1), ("conv1d-dropout", 0)]
# the max pool's finite differences are the slowest; the fast tier checks the pool's backward through the mistakes test
SLOW_RIGHT = {("cnn-1x8x8-strokes", 1)}


@pytest.mark.parametrize("scenario, index", [pytest.param(*case, marks=[pytest.mark.slow] if case in SLOW_RIGHT else [])
                                             for case in RIGHT], ids=[f"{s}-{i}" for s, i in RIGHT])
def test_a_right_backward_passes_against_every_oracle(scenario, index):
    require("torch")
    require("jax")
    result = assert_layer_gradients(reference_backward(scenario, index), scenario, index)
    assert result.oracles == ["torch", "jax", "finite differences"]
    assert {c.tensor for c in result.checks} >= {"dx"} and result.diagnoses == []


def affine_backward_averaged(x, params, dout):
    return {"x": dout @ params["weight"], "weight": dout.T @ x / x.shape[0], "bias": dout.sum(0)}


def affine_backward_negated_input(x, params, dout):
    return {"x": -(dout @ params["weight"]), "weight": dout.T @ x, "bias": dout.sum(0)}


def test_a_dense_weight_gradient_divided_by_the_batch_is_named_and_diagnosed():
    require("torch")
    result = verify_layer(affine_backward_averaged, "spiral-2-16-3-adam", 1, frameworks=("torch",))
    assert not result.ok and {c.tensor for c in result.checks if not c.ok} == {"dweight"}
    (diagnosis,) = result.diagnoses
    assert diagnosis.parameter == "weight" and "1 / the batch size" in diagnosis.text and "60" in diagnosis.text
    with pytest.raises(AssertionError, match="dweight disagree"):
        assert_layer_gradients(affine_backward_averaged, "spiral-2-16-3-adam", 1, frameworks=("torch",))
    flipped = verify_layer(affine_backward_negated_input, "spiral-2-16-3-adam", 1, frameworks=("torch",))
    assert [d.parameter for d in flipped.diagnoses] == ["x"] and "sign" in flipped.diagnoses[0].text


def relu_forward(x):
    return np.maximum(x, 0), x


def relu_backward(dout, cache):
    return (dout * (cache > 0),)


def sigmoid_forward(x):
    s = 1 / (1 + np.exp(-x))
    return s, s


@pytest.mark.parametrize("backward, ok", [
    (relu_backward, True),
    (lambda dout, cache: (dout * (cache > 0) * 2,), False),                   # a factor 2
    (lambda dout, cache: (dout,), False),                                    # the mask forgotten
])
def test_the_course_signature_checks_forward_and_backward_of_an_activation(backward, ok):
    require("torch")
    result = verify_layer(backward, "spiral-2-16-3-adam", 0, part="activation", forward=relu_forward,
                          frameworks=("torch",))
    assert result.ok is ok
    assert result.checks[0].tensor == "out" and result.checks[0].ok


def test_a_wrong_forward_is_named_as_the_forward():
    require("torch")
    result = verify_layer(relu_backward, "grokking-3-4-1", 0, part="activation",
                          forward=lambda x: (np.maximum(x, 0) * 1.5, x), frameworks=("torch",))
    assert [c.tensor for c in result.checks if not c.ok] == ["out"]          # the backward is right
    with pytest.raises(LayerVerifyError, match="raised TypeError"):
        verify_layer(lambda dout, cache: (dout * cache,), "grokking-3-4-1", 0, part="activation",
                     forward=lambda x: (np.maximum(x, 0), None), frameworks=())


def test_sigmoid_and_softmax_activations():
    require("torch")
    right = verify_layer(lambda dout, s: (dout * s * (1 - s),), "conv1d-dropout", 0, part="activation",
                         forward=sigmoid_forward, frameworks=("torch",))
    wrong = verify_layer(lambda dout, s: (dout * s,), "conv1d-dropout", 0, part="activation",
                         forward=sigmoid_forward, frameworks=("torch",))
    assert right.ok and not wrong.ok
    softmax = Activation("softmax")

    def softmax_backward(x, params, dout):
        softmax.forward(x)
        return {"x": softmax.backward(dout)}

    def softmax_diagonal(x, params, dout):                  # the Jacobian's diagonal only: a ⊙ (1 − a) ⊙ dout
        a = softmax.forward(x)
        return {"x": dout * a * (1 - a)}

    last = len(backproof.load("softmax-2-3-3").layers) - 1
    assert verify_layer(softmax_backward, "softmax-2-3-3", last, part="activation", frameworks=("torch",)).ok
    assert not verify_layer(softmax_diagonal, "softmax-2-3-3", last, part="activation", frameworks=("torch",)).ok


def test_mistakes_in_conv_pool_and_norms_are_named_at_their_argument():
    require("torch")
    conv = reference_backward("cnn-1x8x8-strokes", 0)

    def conv_flipped(x, params, dout):                       # dW of a true convolution: the kernel's flip
        answer = conv(x, params, dout)
        return {**answer, "weight": answer["weight"][..., ::-1, ::-1]}

    pool = reference_backward("cnn-1x8x8-strokes", 1)

    def pool_spread(x, params, dout):                        # dout spread over the window instead of to its max
        return {"x": np.repeat(np.repeat(dout, 2, axis=2), 2, axis=3)[:, :, :x.shape[2], :x.shape[3]] / 4}

    norm = reference_backward("batchnorm-mlp-3-8-2", 1)

    def norm_as_constants(x, params, dout):                  # the batch's mean and variance treated as constants
        answer = norm(x, params, dout)
        r = 1 / np.sqrt(x.var(axis=0) + 1e-5)
        return {**answer, "x": dout * params["weight"] * r}

    for backward, scenario, index, wrong in ((conv_flipped, "cnn-1x8x8-strokes", 0, {"dweight"}),
                                             (pool_spread, "cnn-1x8x8-strokes", 1, {"dx"}),
                                             (norm_as_constants, "batchnorm-mlp-3-8-2", 1, {"dx"})):
        result = verify_layer(backward, scenario, index, frameworks=("torch",))
        assert {c.tensor for c in result.checks if not c.ok} == wrong, (scenario, index, str(result))
    assert pool(np.zeros((1, 1, 2, 2)), {}, np.ones((1, 1, 1, 1)))["x"].sum() == 1      # the right one: one cell


def test_bad_requests_are_one_line_errors():
    with pytest.raises(LayerVerifyError, match="layer 9 does not exist"):
        layer_case("blog-2-3-3-1", 9)
    with pytest.raises(LayerVerifyError, match="has no activation"):
        layer_case("spiral-2-16-3-adam", 1, "activation")
    with pytest.raises(LayerVerifyError, match="not a dict"):
        verify_layer(lambda x, params, dout: dout, "blog-2-3-3-1", 0, frameworks=())
    with pytest.raises(LayerVerifyError, match="returned 1 arrays; it must return 3"):
        verify_layer(lambda dout, cache: (dout,), "blog-2-3-3-1", 0, forward=lambda x, w, b: (x @ w.T + b, None),
                     frameworks=())


def test_dout_is_seeded_and_the_truth_is_the_vector_jacobian_product():
    """The one-layer network's loss Σ (out − t)² with t = out − dout/2 has gradient dout at the output: so each
    framework's autodiff of it is the VJP. The reference's own dx is dout·W for a dense layer."""
    single, x, params, dout, out = layer_case("blog-2-3-3-1", 1, seed=3)
    again = layer_case("blog-2-3-3-1", 1, seed=3)[3]
    assert np.array_equal(dout, again) and not np.array_equal(dout, layer_case("blog-2-3-3-1", 1, seed=4)[3])
    result = verify_layer(lambda x_, p, d: {"x": d @ p["weight"], "weight": d.T @ x_, "bias": d.sum(0)},
                          "blog-2-3-3-1", 1, seed=3, frameworks=())
    assert result.ok and result.oracles == ["finite differences"]


def run_cli(args, capsys):
    from backproof.cli import main
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


EXAMPLE = "examples/layer_backward.py"


def test_the_cli_runs_the_code_in_a_child_and_exits_0_1_or_2(capsys, tmp_path):
    require("torch")
    code, out, err = run_cli(["verify-layer", f"{EXAMPLE}:affine_backward", "spiral-2-16-3-adam", "--layer", "1",
                              "--frameworks", "torch"], capsys)
    assert code == 0 and "verdict: OK" in out, out + err
    code, out, err = run_cli(["verify-layer", f"{EXAMPLE}:affine_backward_averaged", "spiral-2-16-3-adam", "--layer",
                              "1", "--frameworks", "torch"], capsys)
    assert code == 1 and "dweight disagree" in out and "1 / the batch size" in out, out + err
    code, out, err = run_cli(["verify-layer", f"{EXAMPLE}:relu_backward", "spiral-2-16-3-adam", "--layer", "0",
                              "--part", "activation", "--forward", "relu_forward", "--frameworks", "torch"], capsys)
    assert code == 0 and "ok   out" in out, out + err
    (tmp_path / "ends.py").write_text("import os\ndef backward(x, params, dout):\n    os._exit(0)\n")
    code, out, err = run_cli(["verify-layer", f"{tmp_path / 'ends.py'}:backward", "blog-2-3-3-1", "--layer", "0"],
                             capsys)
    assert code == 2 and out == "" and "ended its process (exit code 0" in err and len(err.splitlines()) == 1, err
    code, out, err = run_cli(["verify-layer", f"{EXAMPLE}:relu_backward", "blog-2-3-3-1", "--layer", "0",
                              "--forward", "no_such_forward"], capsys)
    assert code == 2 and "has no function 'no_such_forward' (--forward)" in err


def test_a_forgotten_derivative_and_a_norm_without_its_statistics_paths_are_diagnosed():
    """Network mode (verify) and layer mode alike: the wrong gradient equals the reference's with that one mistake
    made (backproof/diagnose.py, counterfactuals)."""
    require("torch")
    from backproof.diagnose import _StatisticsAsConstants, _WithoutDerivative
    from reference.network import Model, gradients
    grokking, norm_net = backproof.load("grokking-3-4-1"), backproof.load("batchnorm-mlp-3-8-2")

    def planted(scenario, part, k, wrapper):
        def fn(params, inputs, targets):
            model = Model(scenario.with_parameters(params))
            getattr(model, part)[k] = wrapper(getattr(model, part)[k])
            return gradients(model, inputs, targets, scenario.criterion).grads
        return fn

    result = backproof.verify(planted(grokking, "activations", 0, _WithoutDerivative), grokking, ("torch",))
    assert {d.kind for d in result.diagnoses} == {"missing-term"}
    assert "layer 0's activation derivative forgotten" in result.diagnoses[0].text
    result = backproof.verify(planted(norm_net, "layers", 3, _StatisticsAsConstants), norm_net, ("torch",))
    assert result.diagnoses and all("layer 3's batch_norm1d backward missing the paths" in d.text
                                    for d in result.diagnoses)
    spec = norm_net.layers[1]

    def bn_constants(x, params, dout):
        layer = build(spec, {"weight": params["weight"], "bias": params["bias"]})
        layer.forward(x)
        layer.backward(dout)
        return {"x": dout * params["weight"] * layer.r, "weight": layer.weight_grad, "bias": layer.bias_grad}

    (diagnosis,) = verify_layer(bn_constants, norm_net, 1, frameworks=("torch",)).diagnoses
    assert diagnosis.parameter == "x" and "the layer's batch_norm1d backward missing the paths" in diagnosis.text
    (diagnosis,) = verify_layer(lambda dout, cache: (dout,), "spiral-2-16-3-adam", 0, part="activation",
                                forward=relu_forward, frameworks=("torch",)).diagnoses
    assert "the layer's activation derivative forgotten" in diagnosis.text
    ln = backproof.load("layernorm-gelu-4-6-3").layers[1]

    def ln_without_variance_path(x, params, dout):
        layer = build(ln, {"weight": params["weight"], "bias": params["bias"]})
        layer.forward(x)
        layer.backward(dout)
        g = dout * params["weight"]
        return {"x": layer.r * (g - g.mean(axis=-1, keepdims=True)), "weight": layer.weight_grad,
                "bias": layer.bias_grad}

    result = verify_layer(ln_without_variance_path, "layernorm-gelu-4-6-3", 1, frameworks=("torch",))
    assert [c.tensor for c in result.checks if not c.ok] == ["dx"] * 2        # torch and finite differences


def test_softmax_cross_entropy_as_a_loss_part_in_the_course_signature(capsys):
    """softmax_loss(x, y) -> (loss, dx): x the network's output (drawn), y the class indices; the loss value is
    checked too, and a gradient of the summed loss is diagnosed as the batch size."""
    require("torch")
    import importlib.util
    spec = importlib.util.spec_from_file_location("layer_backward", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    right = verify_layer(example.softmax_loss, "spiral-2-16-3-adam", 1, part="loss", frameworks=("torch",))
    assert right.ok and [c.tensor for c in right.checks][:1] == ["out"]
    wrong = verify_layer(example.softmax_loss_summed, "spiral-2-16-3-adam", 1, part="loss", frameworks=("torch",))
    (diagnosis,) = wrong.diagnoses
    assert not wrong.ok and diagnosis.parameter == "x" and "the batch size, 60" in diagnosis.text
    with pytest.raises(LayerVerifyError, match="the loss follows the last layer, 1, not 0"):
        layer_case("spiral-2-16-3-adam", 0, "loss")
    code, out, err = run_cli(["verify-layer", f"{EXAMPLE}:softmax_loss_summed", "spiral-2-16-3-adam", "--layer", "1",
                              "--part", "loss", "--frameworks", "torch"], capsys)
    assert code == 1 and "the batch size, 60" in out, out + err


def test_the_examples_hand_written_batch_norm_passes_and_its_common_mistake_is_named(capsys):
    require("torch")
    code, out, err = run_cli(["verify-layer", f"{EXAMPLE}:batchnorm_backward", "batchnorm-mlp-3-8-2", "--layer", "1",
                              "--frameworks", "torch"], capsys)
    assert code == 0, out + err
    code, out, err = run_cli(["verify-layer", f"{EXAMPLE}:batchnorm_backward_as_constants", "batchnorm-mlp-3-8-2",
                              "--layer", "1", "--frameworks", "torch", "--json"], capsys)
    document = json.loads(out)
    (diagnosis,) = document["results"][0]["verify_layer"]["diagnoses"]
    assert code == 1 and diagnosis["parameter"] == "x" and diagnosis["kind"] == "missing-term"


def test_a_framework_that_is_not_installed_is_reported_as_skipped_not_as_run(monkeypatch):
    require("torch")
    import backproof.frameworks as frameworks
    real = frameworks.implementation

    def without_jax(name):
        return frameworks.Skipped("jax", "jax is not installed (planted)") if name == "jax" else real(name)
    monkeypatch.setattr(frameworks, "implementation", without_jax)
    result = verify_layer(reference_backward("spiral-2-16-3-adam", 1), "spiral-2-16-3-adam", 1)
    assert result.ok and result.oracles == ["torch", "finite differences"]
    assert [s.framework for s in result.skipped] == ["jax"] and "jax skipped" in str(result)
    from backproof.envelope import verify_layer_result
    block = verify_layer_result(result, backproof.load("spiral-2-16-3-adam"), ["torch", "jax"])["frameworks"]
    assert block["jax"]["status"] == "skipped" and block["torch"]["status"] == "ran"


def test_a_transformer_blocks_backward_is_verified_parameter_by_parameter_and_a_dropped_skip_path_is_caught(tmp_path):
    """A transformer block's hand-written backward (the reference's, then the same without the residual paths'
    identity) against torch's and JAX's autodiff of one nn.TransformerEncoderLayer and finite differences: every
    parameter under torch's name (dself_attn.in_proj_weight, dlinear1.weight, …), the columns aligned."""
    require("torch")
    require("jax")
    sc = backproof.load("transformer-prenorm-2-heads")
    spec = sc.layers[1]

    def right(x, params, dout):
        layer = build(spec, params)
        layer.forward(x)
        return {"x": layer.backward(dout), **layer.gradients()}

    result = backproof.verify_layer(right, sc, 1)
    assert result.ok, str(result)
    names = {c.tensor for c in result.checks}
    assert {"dx", "dself_attn.in_proj_weight", "dlinear1.weight", "dnorm2.bias"} <= names
    lines = [line for line in str(result).splitlines() if " vs " in line]
    assert len({line.index(" vs ") for line in lines}) == 1, lines

    def skip_dropped(x, params, dout):
        layer = build(spec, params)
        layer.forward(x)
        dy = layer.norm2.backward(layer.feedforward_backward(dout))         # no "dout +": the skip path dropped
        return {"x": layer.norm1.backward(layer.self_attn.backward(dy)), **layer.gradients()}

    wrong = backproof.verify_layer(skip_dropped, sc, 1)
    assert not wrong.ok
    failing = {c.tensor for c in wrong.checks if not c.ok}
    assert "dx" in failing and "dlinear2.weight" not in failing      # above the first skip, the gradients are right


def test_backpropagation_through_time_without_the_cell_state_path_is_caught_naming_each_parameter():
    """The recurrent issue's done-when for verify: examples/lstm_backward.py, a homework BPTT for one LSTM layer, run in
    a child process: right, it agrees with torch, JAX and finite differences; without the cell-state path every
    parameter it gets wrong is named, and the mistake is named as that path."""
    require("torch")
    require("jax")
    example = str(ROOT / "examples" / "lstm_backward.py")
    right = backproof.verify_layer(f"{example}:lstm_backward", "lstm-gru-count-bits", 0)
    assert right.ok, str(right)
    assert {"dweight_ih_l0", "dweight_hh_l0", "dbias_ih_l0", "dbias_hh_l0", "dx"} <= {c.tensor for c in right.checks}
    wrong = backproof.verify_layer(f"{example}:lstm_backward_without_cell_path", "lstm-gru-count-bits", 0)
    assert not wrong.ok
    assert {c.tensor for c in wrong.checks if not c.ok} == {"dx", "dweight_ih_l0", "dweight_hh_l0", "dbias_ih_l0",
                                                             "dbias_hh_l0"}
    named = {d.parameter: d for d in wrong.diagnoses}
    assert named["weight_hh_l0"].kind == "missing-term" and "cell-state path" in named["weight_hh_l0"].text


def test_an_embedding_is_refused_by_name_with_where_to_check_it():
    """An embedding's inputs are indices, with no gradient to verify: verify-layer says so and points to verify."""
    with pytest.raises(LayerVerifyError, match=r"layers\[0\] is an embedding, whose inputs are indices with no "
                                               r"gradient: check its weight's gradient with `backproof verify`"):
        layer_case(backproof.load("transformer-prenorm-2-heads"), 0)
