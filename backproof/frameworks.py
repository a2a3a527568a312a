"""The three implementations, imported only when used, and the one loop that runs them.

NumPy is always there. torch and JAX are optional: when one is missing, the harness
reports it as skipped with the command that installs it. ``run_each`` is the loop
every command uses: import each framework or record it as skipped, run the work,
record the time or the error. With ``parallel=True`` the frameworks run in worker
processes (``python -m backproof.worker``), at most one per core and the slowest alone;
results come back in the order the frameworks were asked for, and a process that dies
is an error, never a hang.
"""

import importlib
import importlib.util
import os
import pickle
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

FRAMEWORKS = ("numpy", "torch", "jax")
FD = "numpy+fd"     # finite differences of the reference's loss: one more framework key in reports

MODULES = {"numpy": "reference", "torch": "torch_impl", "jax": "jax_impl"}
REQUIRES = {"numpy": ("numpy",), "torch": ("torch",), "jax": ("jax", "optax")}    # the libraries each imports
INSTALL_HINTS = {
    "numpy": "pip install numpy",
    "torch": "pip install 'backproof[torch]' -c constraints.txt   (pins torch==2.13.0, the CPU build)",
    "jax": "pip install 'backproof[jax]' -c constraints.txt",
}


@dataclass(frozen=True)
class Skipped:
    """A framework that could not be imported."""

    framework: str
    reason: str

    @property
    def hint(self):
        return INSTALL_HINTS[self.framework]

    def message(self):
        """The report line: what is missing and the command that installs it."""
        return f"skipped {self.framework}: {self.reason}. Install with: {self.hint}"


def implementation(framework):
    """The implementation module for ``framework``, or a Skipped if its library is missing."""
    if framework not in MODULES:
        raise ValueError(f"unknown framework {framework!r} (known: {', '.join(FRAMEWORKS)})")
    for library in REQUIRES[framework]:
        try:
            importlib.import_module(library)
        except ImportError as exc:
            return Skipped(framework, f"{library} is not installed ({exc})")
    from .perturb import apply       # a no-op unless BACKPROOF_PERTURB is set (make test-portable)
    return apply(framework, importlib.import_module(MODULES[framework]))


def available(framework: str) -> bool:
    """True when the framework's library can be imported (without importing it)."""
    return all(importlib.util.find_spec(library) is not None for library in REQUIRES[framework])


@dataclass
class Runs:
    """What ``run_each`` found: results of the frameworks that ran, the skipped ones, the failures."""

    results: dict = field(default_factory=dict)      # framework -> fn's value
    seconds: dict = field(default_factory=dict)      # framework -> wall time of fn
    skipped: list = field(default_factory=list)      # [Skipped]
    errors: dict = field(default_factory=dict)       # framework -> "ExceptionType: message"


def run_each(fn, frameworks, parallel=False):
    """fn(framework, module) for each framework -> Runs.

    A framework whose library is missing is skipped; an exception inside fn is recorded
    as that framework's error and the others still run. parallel: worker processes, ``python -m
    backproof.worker`` (fn must then pickle: a module-level function or a functools.partial of one;
    anything else is each framework's error). Nothing of the caller's ``__main__`` is imported again.
    """
    runs = Runs()
    todo = []
    for name in frameworks:
        if not available(name):
            runs.skipped.append(implementation(name))
        else:
            todo.append(name)
    if parallel and len(todo) > 1:
        outcomes = _in_processes(fn, todo)
    else:
        outcomes = {name: _timed(fn, name) for name in todo}
    for name in todo:
        status, value, seconds = outcomes[name]
        if status == "error":
            runs.errors[name] = value
        else:
            runs.results[name] = value
            runs.seconds[name] = seconds
    return runs


# the slowest per step on the built-in networks first: it gets a process (and a core) of its own
SLOWEST_FIRST = ("torch", "jax", "numpy")


def _in_processes(fn, names):
    """{name: _timed(fn, name)}, the frameworks spread over at most one worker process per core, all at
    once; a worker runs its frameworks one after another."""
    cores = max(1, min(len(names), os.cpu_count() or 1))
    ordered = sorted(names, key=lambda name: SLOWEST_FIRST.index(name) if name in SLOWEST_FIRST else 0)
    rest = ordered[1:]
    groups = [ordered[:1]] + [rest[k::cores - 1] for k in range(cores - 1)] if cores > 1 else [ordered]
    # one thread each: the networks are far too small for intra-op threads to pay, and spinning threads
    # would only slow the other workers down
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               XLA_FLAGS=(os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false").strip())
    workers = [(group, subprocess.Popen([sys.executable, "-m", "backproof.worker"], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env))
               for group in groups]
    try:
        payloads = [pickle.dumps((fn, group)) for group, _ in workers]
    except Exception as exc:  # a lambda or a local function cannot travel to another process
        for _, worker in workers:
            worker.kill()
            worker.communicate()
        return {name: ("error", f"the work cannot be sent to a worker process ({type(exc).__name__}: {exc}); "
                                "give a module-level function", 0.0) for name in names}
    with ThreadPoolExecutor(len(workers)) as pool:     # feed and drain every worker at once
        try:
            answers = list(pool.map(lambda pair: pair[0][1].communicate(pair[1]), zip(workers, payloads)))
        except BaseException:      # Ctrl-C sent to this process alone: the workers end now, not when they are done
            for _, worker in workers:
                worker.kill()
            raise
    outcomes = {}
    for (group, worker), (out, err) in zip(workers, answers):
        try:
            outcomes.update(pickle.loads(out))
        except Exception:  # the process died before it answered: report it, never hang or crash
            last = err.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no message"]
            for name in group:
                outcomes[name] = ("error", f"the {name} process exited with code {worker.returncode}: {last[0]}",
                                  0.0)
    return outcomes


def _timed(fn, name):
    """("ran", value, seconds) or ("error", message, seconds): fn never raises out of here."""
    start = time.perf_counter()
    try:
        module = implementation(name)
        if isinstance(module, Skipped):
            return "error", module.message(), 0.0
        value = fn(name, module)
    except Exception as exc:  # a crash inside one framework is a reported failure, not a traceback
        return "error", f"{type(exc).__name__}: {exc}", time.perf_counter() - start
    return "ran", value, time.perf_counter() - start


def as_frameworks(frameworks):
    """A tuple of framework names from a tuple, a list or a comma-separated string; ValueError if one is unknown or
    there are none: the API refuses what the CLI refuses (an empty list would compare nothing and pass)."""
    if isinstance(frameworks, str):
        return parse_frameworks(frameworks)
    names = list(frameworks)
    if not all(isinstance(name, str) for name in names):
        raise ValueError(f"frameworks must be names from {', '.join(FRAMEWORKS)}; got {names!r}")
    return parse_frameworks(",".join(names))


def parse_frameworks(text):
    """'numpy,torch' -> ('numpy', 'torch'); raises ValueError for an unknown name."""
    names = tuple(name.strip() for name in str(text).split(",") if name.strip())
    unknown = [name for name in names if name not in FRAMEWORKS]
    if unknown or not names:
        raise ValueError(f"--frameworks takes a comma-separated list of {', '.join(FRAMEWORKS)}; got {text!r}")
    return tuple(dict.fromkeys(names))


class Covered:
    """``ok`` and ``not_compared`` from ``agrees`` and ``coverage``: the one rule for check's and train's reports, which
    define ``agrees``, ``ran`` (the frameworks that produced a result), ``asked`` and ``required``. Also how both
    print: ``str`` is the CLI's text, ``repr`` one line, ``verdict`` the verdict line (backproof/render.py)."""

    def __str__(self):
        from .render import report_text
        return report_text(self)

    def __repr__(self):
        from .render import report_repr
        return report_repr(self)

    @property
    def verdict(self):
        """The verdict line, 'verdict: OK — …' (a check's is its step's; its training has its own)."""
        from .render import report_verdict
        return report_verdict(self)

    @property
    def coverage(self):
        """"compared", "alone", "not compared" or "missing": see frameworks.coverage."""
        return coverage(self.ran, self.asked, self.required)

    @property
    def ok(self):
        """Everything agrees and something was compared (or one framework ran, the only one asked for)."""
        return self.agrees and self.coverage in ("compared", "alone")

    @property
    def not_compared(self):
        """Everything that ran agrees, but fewer than two frameworks ran though several were asked for."""
        return self.agrees and self.coverage == "not compared"


def coverage(ran, asked, required=()):
    """What a verdict may claim, from the frameworks that ran, were asked for, and are required (--require):

    "compared"       two or more ran: their traces were compared;
    "alone"          one ran and only that one was asked for (--frameworks numpy): nothing to compare, as asked;
    "not compared"   fewer than two ran though several were asked for (the others are not installed): nothing
                     was compared, so the verdict is not OK (exit code 4);
    "missing"        a framework named by ``required`` did not run (exit code 1).
    """
    if any(name not in ran for name in required):
        return "missing"
    if len(ran) > 1:
        return "compared"
    return "alone" if len(asked) == 1 and list(ran) == list(asked) else "not compared"
