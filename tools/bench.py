"""The speed goals, measured side by side in one run:

    make bench        # python -m tools.bench [--repeats 3] [--write docs/measurements.json]

1. ``backproof check`` over every built-in scenario runs the frameworks concurrently: its wall
   time against the slowest framework's own time for the same work (each run alone, serially).
   Goal: at most 1.25x.
2. The 8-direction gradient check of a 784-256-256-10 ReLU MLP (batch 128, float64): its time
   in units of one forward+backward pass of that network. Goal: at most 8.
3. The NumPy reference's training loop on XOR (10,000 epochs of per-sample SGD) against a
   minimal hand-written NumPy loop of the same maths. Goal: at most 1.25x.
4. ``make test``, the suite's fast tier: the time pytest reports, median of ``repeats`` runs after
   one warm-up run (which fills the bytecode and JAX compilation caches). Goal: at most 30 s.
5. The NumPy reference's conv forward+backward on a LeNet-sized batch (32×1×28×28; conv 6@5×5, relu, max-pool 2,
   conv 16@5×5, relu, max-pool 2, flatten, linear 256→10, cross-entropy) against torch's eager forward+backward of
   the same network (torch_impl's gradients stage), in one run. Goal: at most 3x. The reference stays readable:
   im2col as a strided view and one einsum forward; backward scatters each kernel offset's share in a loop over
   kH·kW offsets, the clear form of the sum, not a col2im trick.
6. ``backproof check cnn-1x8x8-strokes`` (one step and 40 epochs of training in all three): its wall time.

Timings are medians of ``repeats`` runs, interleaved so that a slow moment of this noisy
machine hits both sides of a ratio alike. It also measures per-coordinate finite differences
on the MLP, extrapolated to all 269,322 coordinates.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import reference
from reference import gradcheck
from reference.network import loss_and_gradients, loss_of
from reference.scenario import LayerSpec, frozen_array

ROOT = Path(__file__).resolve().parent.parent
GOALS = {"check_concurrency": 1.25, "directional_check_passes": 8.0, "reference_training_overhead": 1.25,
         "test_seconds": 30.0, "conv_reference_ratio": 3.0}


def mlp(widths=(784, 256, 256, 10), batch=128, seed=0, dtype="float64"):
    """A ReLU MLP scenario with a linear output and mse; He-normal weights, small biases, random data."""
    rng = np.random.default_rng(seed)
    layers = []
    for i, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
        last = i == len(widths) - 2
        layers.append(LayerSpec(
            weight=frozen_array(rng.normal(0.0, np.sqrt(2.0 / fan_in), (fan_out, fan_in)), dtype),
            bias=frozen_array(rng.uniform(-0.1, 0.1, fan_out), dtype),
            activation="identity" if last else "relu"))
    return reference.Scenario(
        name="mlp-" + "-".join(map(str, widths)), layers=tuple(layers), loss="mse",
        inputs=frozen_array(rng.uniform(0.0, 1.0, (batch, widths[0])), dtype),
        targets=frozen_array(np.eye(widths[-1])[rng.integers(0, widths[-1], batch)], dtype),
        lr=0.1, dtype=dtype, description="benchmark network for finite differences")


def median_seconds(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def directional_seconds(scenario, directions=8, repeats=5):
    """Median wall time of the whole random-direction check: gradients, directions, 2·directions losses."""
    params = scenario.parameters()

    def check():
        _, grads = loss_and_gradients(scenario)
        vs = gradcheck.random_directions(params, directions, seed=0)
        return gradcheck.directional_derivatives(
            loss_of(scenario), grads, params, vs)

    return median_seconds(check, repeats)


def coordinate_seconds(scenario, sample=40, repeats=3, seed=0):
    """(seconds per coordinate, extrapolated seconds for every coordinate), from a random sample."""
    params = scenario.parameters()
    rng = np.random.default_rng(seed)
    names = list(params)
    sizes = np.array([params[n].size for n in names], dtype=np.float64)
    coordinates = []
    for _ in range(sample):
        name = names[rng.choice(len(names), p=sizes / sizes.sum())]
        coordinates.append((name, tuple(int(rng.integers(0, d)) for d in params[name].shape)))
    loss = loss_of(scenario)
    seconds = median_seconds(lambda: gradcheck.coordinate_differences(loss, params, coordinates), repeats)
    per_coordinate = seconds / sample
    return per_coordinate, per_coordinate * sizes.sum()


def interleaved(functions, repeats):
    """{name: median seconds}, running the functions in turn ``repeats`` times (so that a slow moment of
    the machine hits every function alike)."""
    times = {name: [] for name in functions}
    for _ in range(repeats):
        for name, fn in functions.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def command(*args):
    """A zero-argument function that runs ``python -m backproof ARGS`` and fails loudly."""
    def run():
        result = subprocess.run([sys.executable, "-m", "backproof", *args], cwd=ROOT, capture_output=True, text=True)
        if result.returncode != 0:
            raise SystemExit(f"backproof {' '.join(args)} exited {result.returncode}:\n{result.stderr[-2000:]}")
    return run


def check_concurrency(repeats):
    """(concurrent wall time, {framework: its own serial time}) of `backproof check` on every built-in."""
    from backproof.frameworks import FRAMEWORKS, available
    frameworks = [fw for fw in FRAMEWORKS if available(fw)]
    functions = {fw: command("check", "--serial", "--frameworks", fw) for fw in frameworks}
    functions["concurrent"] = command("check", "--frameworks", ",".join(frameworks))
    times = interleaved(functions, repeats)
    return times.pop("concurrent"), times


def directional_passes(repeats):
    """(seconds of the 8-direction check, seconds of one forward+backward pass) on the MLP."""
    scenario = mlp()
    params = scenario.parameters()

    def check():
        _, grads = loss_and_gradients(scenario)
        vs = gradcheck.random_directions(params, 8, seed=0)
        return gradcheck.directional_derivatives(loss_of(scenario), grads, params, vs)

    times = interleaved({"check": check, "pass": lambda: loss_and_gradients(scenario)}, repeats)
    return times["check"], times["pass"]


def minimal_loop(scenario, epochs):
    """The XOR network's per-sample SGD written as plainly as NumPy allows: the yardstick.

    The same maths as the reference's step: forward, loss, the backward pass down to ∂L/∂x
    (which the reference's ``gradients`` always returns), and the SGD update.
    """
    (w1, b1), (w2, b2) = [(np.array(s.weight), np.array(s.bias)) for s in scenario.layers]
    inputs, targets, lr = scenario.inputs, scenario.targets, scenario.lr
    losses = np.zeros(epochs)
    for epoch in range(epochs):
        total = 0.0
        for r in range(inputs.shape[0]):
            x, t = inputs[r:r + 1], targets[r:r + 1]
            z1 = x @ w1.T + b1
            a1 = np.tanh(z1)
            z2 = a1 @ w2.T + b2
            a2 = np.tanh(z2)
            total += ((a2 - t) ** 2).sum() / a2.size
            dz2 = 2 * (a2 - t) / a2.size * (1 - np.tanh(z2) ** 2)
            dz1 = (dz2 @ w2) * (1 - np.tanh(z1) ** 2)
            dx = dz1 @ w1                  # ∂L/∂x: part of every backward pass the reference runs  # noqa: F841
            w2, b2 = w2 - lr * (dz2.T @ a1), b2 - lr * dz2.sum(0)
            w1, b1 = w1 - lr * (dz1.T @ x), b1 - lr * dz1.sum(0)
        losses[epoch] = total / inputs.shape[0]
    return losses


def training_overhead(repeats):
    """(reference seconds, minimal loop seconds) for XOR's full 10,000 epochs; checks they agree."""
    from backproof.scenario_file import load
    scenario = load("xor-2-3-1-tanh")
    epochs, _ = scenario.schedule()
    np.testing.assert_allclose(minimal_loop(scenario, 50), reference.train(scenario, 50)["train.loss"], rtol=1e-12)
    times = interleaved({"reference": lambda: reference.train(scenario, epochs),
                         "minimal": lambda: minimal_loop(scenario, epochs)}, repeats)
    return times["reference"], times["minimal"]


def lenet(batch=32, seed=0):
    """A LeNet-sized CNN scenario: torch's default init (uniform ±1/√fan_in), random images and classes."""
    rng = np.random.default_rng(seed)

    def torch_init(shape):
        bound = 1.0 / np.sqrt(np.prod(shape[1:]))
        return {"weight": rng.uniform(-bound, bound, shape), "bias": rng.uniform(-bound, bound, shape[0])}
    layers = [{"type": "conv2d", **torch_init((6, 1, 5, 5)), "activation": "relu"},
              {"type": "max_pool2d", "kernel_size": 2},
              {"type": "conv2d", **torch_init((16, 6, 5, 5)), "activation": "relu"},
              {"type": "max_pool2d", "kernel_size": 2}, {"type": "flatten"},
              {"type": "linear", **torch_init((10, 256))}]
    classes = rng.integers(0, 10, batch)
    return reference.Scenario.build("lenet", layers, "cross_entropy", rng.standard_normal((batch, 1, 28, 28)),
                                    np.eye(10)[classes], 0.1, target_format="indices")


def conv_ratio(repeats):
    """(reference seconds, torch seconds) of one forward+backward pass of the LeNet batch, interleaved."""
    import torch

    import torch_impl
    scenario = lenet()
    model, x = reference.Model(scenario), np.array(scenario.inputs)
    torch_model = torch_impl.Model(scenario)
    tx, tt = torch.tensor(x), torch.tensor(scenario.class_indices())
    ours = reference.gradients(model, x, scenario.targets, scenario.criterion)
    theirs = torch_impl.gradients(torch_model, tx, tt, scenario.criterion)
    np.testing.assert_allclose(ours.grads["layers.0.weight"], theirs.grads["layers.0.weight"].numpy(), rtol=1e-9,
                               atol=1e-12)              # the same maths, or the ratio means nothing
    times = interleaved({"reference": lambda: reference.gradients(model, x, scenario.targets, scenario.criterion),
                         "torch": lambda: torch_impl.gradients(torch_model, tx, tt, scenario.criterion)},
                        max(5, repeats * 3))
    return times["reference"], times["torch"]


def suite_seconds(repeats):
    """(median, [each]) of the seconds pytest reports for ``make test``, after one warm-up run."""
    import re
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="")
    times = []
    for k in range(repeats + 1):
        done = subprocess.run(["make", "--no-print-directory", "test"], cwd=ROOT, env=env, capture_output=True,
                              text=True)
        found = re.findall(r" in ([0-9.]+)s", done.stdout)
        if done.returncode != 0 or not found:
            raise SystemExit(f"make test failed; bench measures a passing suite:\n{done.stdout[-2000:]}")
        if k:
            times.append(float(found[-1]))
    return statistics.median(times), times


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tools.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--write", metavar="FILE", help="record the figures under 'bench' in this JSON file")
    args = parser.parse_args(argv)
    print(f"medians of {args.repeats} interleaved runs on {os.cpu_count()} cores")

    concurrent, alone = check_concurrency(args.repeats)
    slowest = max(alone, key=alone.get)
    check_ratio = concurrent / alone[slowest]
    seconds, one_pass = directional_passes(max(5, args.repeats))
    passes = seconds / one_pass
    ours, minimal = training_overhead(args.repeats)
    train_ratio = ours / minimal
    per, total = coordinate_seconds(mlp(), repeats=max(1, args.repeats // 2))
    suite, suite_runs = suite_seconds(args.repeats)
    conv_ours, conv_torch = conv_ratio(args.repeats)
    cnn_check = median_seconds(command("check", "cnn-1x8x8-strokes"), args.repeats)

    figures = {
        "check_concurrency": {"ratio": check_ratio, "goal": GOALS["check_concurrency"], "concurrent_s": concurrent,
                              "alone_s": alone, "slowest": slowest},
        "directional_check_passes": {"ratio": passes, "goal": GOALS["directional_check_passes"],
                                     "check_s": seconds, "forward_backward_s": one_pass},
        "reference_training_overhead": {"ratio": train_ratio, "goal": GOALS["reference_training_overhead"],
                                        "reference_s": ours, "minimal_s": minimal},
        "per_coordinate_fd": {"ms_per_coordinate": per * 1e3, "all_coordinates_s": total},
        "test_seconds": {"ratio": suite, "goal": GOALS["test_seconds"], "runs_s": suite_runs},
        "conv_reference_ratio": {"ratio": conv_ours / conv_torch, "goal": GOALS["conv_reference_ratio"],
                                 "reference_s": conv_ours, "torch_s": conv_torch},
        "check_cnn_s": cnn_check,
    }
    lines = [
        f"backproof check, every built-in: concurrent {concurrent:.1f} s; alone "
        + ", ".join(f"{fw} {s:.1f} s" for fw, s in alone.items())
        + f" -> {check_ratio:.2f}x the slowest ({slowest}); goal <= {GOALS['check_concurrency']}x",
        f"8-direction check of the 784-256-256-10 MLP: {seconds * 1e3:.1f} ms = {passes:.1f} forward+backward "
        f"passes of {one_pass * 1e3:.1f} ms; goal <= {GOALS['directional_check_passes']:g}",
        f"reference training, XOR 10,000 epochs: {ours:.2f} s against a minimal NumPy loop's {minimal:.2f} s "
        f"-> {train_ratio:.2f}x; goal <= {GOALS['reference_training_overhead']}x",
        f"make test (the fast tier), pytest's time: median {suite:.1f} s of "
        + ", ".join(f"{s:.1f}" for s in suite_runs) + f"; goal <= {GOALS['test_seconds']:g} s",
        f"LeNet-sized conv forward+backward (batch 32): reference {conv_ours * 1e3:.1f} ms against torch's eager "
        f"{conv_torch * 1e3:.1f} ms -> {conv_ours / conv_torch:.2f}x; goal <= {GOALS['conv_reference_ratio']:g}x",
        f"per-coordinate finite differences on the MLP: {per * 1e3:.2f} ms per coordinate, "
        f"{total:,.0f} s extrapolated for all 269,322",
        f"backproof check cnn-1x8x8-strokes (a step and 40 epochs, three frameworks): {cnn_check:.1f} s",
    ]
    met = {key: figures[key]["ratio"] <= GOALS[key] for key in GOALS}
    for line, key in zip(lines, [*GOALS, None, None]):
        print(("  " if key is None else ("  met      " if met[key] else "  NOT MET  ")) + line)
    if args.write:
        path = Path(args.write)
        data = json.loads(path.read_text()) if path.exists() else {}
        data["bench"] = figures
        path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
