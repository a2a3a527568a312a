"""How fast finite differences are on a real-sized network.

    python -m tools.bench [--repeats 5]

The network is a 784-256-256-10 ReLU MLP (MNIST-shaped, 269,322 parameters),
a batch of 128, mse, float64, with He-normal weights from a seeded generator.
It measures, in the NumPy reference:

- the random-direction check, 8 directions: one backward pass plus 16 loss
  evaluations, whatever the parameter count;
- per-coordinate central differences on a random sample of coordinates,
  extrapolated to all of them (two loss evaluations per coordinate).

Timings are medians of ``repeats`` runs, because this machine is noisy.
"""

import argparse
import statistics
import sys
import time

import numpy as np

import reference
from reference import gradcheck
from reference.network import loss_and_gradients, loss_of
from reference.scenario import LayerSpec, frozen_array


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


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tools.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    scenario = mlp()
    count = sum(p.size for p in scenario.parameters().values())
    print(f"{scenario.name}: {count:,} parameters, batch {scenario.inputs.shape[0]}, {scenario.dtype}, "
          f"medians of {args.repeats} runs")
    seconds = directional_seconds(scenario, 8, args.repeats)
    print(f"  random-direction check, 8 directions: {seconds:.3f} s")
    per, total = coordinate_seconds(scenario, repeats=max(1, args.repeats // 2))
    print(f"  per-coordinate central differences: {per * 1e3:.2f} ms per coordinate, "
          f"{total:,.0f} s ({total / 3600:.1f} h) extrapolated for all {count:,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
