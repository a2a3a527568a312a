"""Users' code, run in a child process that cannot take the verdict with it (``CHILD``, given a folder DIR).

``verify``'s gradient function and ``import-torch``'s factory are the user's code. Run in backproof's own process,
such code can end it (``os._exit(0)``, from any thread, exits 0 with no verdict), hold the GIL so no timeout fires,
or write to file descriptor 1 under ``--json``. So it runs here, in a child of its own session:

- its file descriptors 1 and 2 are files in DIR (what it prints, even from C or a subprocess, never reaches the
  parent's stdout; the parent shows the end of it on stderr);
- the parent polls it, and kills its whole process group when a phase outlasts its timeout (the module's import and
  the call each have ``timeout`` seconds; starting Python has STARTUP) or when the parent is interrupted (Ctrl-C);
- its answer counts only once it has written DIR/answer.json last, by rename: an exit before that, with any code
  and by any means (``sys.exit`` caught here, ``os._exit``, a signal), is one line naming how it ended.

Every way the code can end maps to a value or a SandboxError (one line; the CLI's exit code 2).
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

STARTUP = 60.0          # seconds for the child to start Python and NumPy, before the user's code runs
POLL = 0.01
OUTPUT_SHOWN = 4096     # bytes of the end of what the child printed, echoed on the parent's stderr
PHASES = ("importing", "imported", "returned")     # the markers the child writes, in order


class SandboxError(ValueError):
    """The user's code did not give an answer; str() is one line."""


def split_target(target):
    """'path/to/module.py:name' or 'package.module:name' -> (where, name, label); SandboxError if malformed."""
    if not isinstance(target, str) or ":" not in target:
        raise SandboxError(f"{target}: give the function as MODULE.py:FUNCTION")
    where, name = target.rsplit(":", 1)
    if not where or not name.isidentifier():
        raise SandboxError(f"{target}: give the function as MODULE.py:FUNCTION")
    path = Path(where)
    if (where.endswith(".py") or path.exists()) and not path.is_file():
        raise SandboxError(f"{where}: no such file")
    return where, name, f"{path.name}:{name}"


def run(kind, target, arrays, timeout, options=None):
    """Run ``target`` in a child: kind "gradients" calls it as fn(params, inputs, targets) with ``arrays``; kind
    "torch_module" calls it with no arguments and reads the nn.Module it returns. -> (metadata, {name: array}).

    Raises SandboxError (one line) for every way the code fails to answer; KeyboardInterrupt after killing the child.
    """
    where, name, label = split_target(target)
    with tempfile.TemporaryDirectory(prefix="backproof-sandbox-") as folder:
        folder = Path(folder)
        np.savez(folder / "arrays.npz", **arrays)
        (folder / "request.json").write_text(json.dumps({"kind": kind, "where": where, "name": name, "label": label,
                                                         "options": options or {}}))
        with open(folder / "output.txt", "wb") as output:
            child = subprocess.Popen([sys.executable, "-c", CHILD, str(folder), str(Path(__file__).parent)],
                                     stdin=subprocess.DEVNULL,
                                     stdout=output, stderr=output, start_new_session=True, cwd=os.getcwd())
            try:
                problem = _watch(child, folder, timeout, where, label)
            except BaseException:          # Ctrl-C, or anything else: the child never outlives the parent
                _kill(child)
                raise
        _echo(folder / "output.txt")
        if problem:
            raise SandboxError(problem)
        answer = json.loads((folder / "answer.json").read_text())
        if "error" in answer:
            raise SandboxError(answer["error"])
        with np.load(folder / "answer.npz", allow_pickle=False) as data:
            values = {key: np.array(data[key]) for key in data.files}
        return answer, values


def _watch(child, folder, timeout, where, label):
    """'' once the child has answered, else why it did not (killing it when a phase outlasts its time)."""
    phase, since = "starting", time.monotonic()
    while True:
        code = child.poll()
        if code is not None:
            break
        reached = next((p for p in reversed(PHASES) if (folder / p).exists()), "starting")
        if reached != phase:
            phase, since = reached, time.monotonic()
        if time.monotonic() - since > (STARTUP if phase == "starting" else timeout):
            _kill(child)
            return {"starting": f"{where}: Python did not start within {STARTUP:g} s",
                    "importing": f"{where}: cannot be imported: it did not finish importing within {timeout:g} s",
                    "imported": f"{label} did not return within {timeout:g} s (give a longer --timeout if it is "
                                f"only slow)",
                    "returned": f"{label}: what it returned could not be read within {timeout:g} s"}[phase]
        time.sleep(POLL)
    if (folder / "answer.json").exists():
        return ""
    phase = next((p for p in reversed(PHASES) if (folder / p).exists()), "starting")     # it may end between polls
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
        return f"{label} was killed by signal {name} before it answered"
    if phase == "starting":
        return f"{where}: Python exited with code {code} before the code was imported"
    return f"{label} ended its process (exit code {code}, as os._exit does) before it answered"


def _kill(child):
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    child.wait()


def _echo(path):
    """The end of what the user's code printed, on stderr (never stdout, which may carry --json)."""
    size = path.stat().st_size
    if not size:
        return
    with open(path, "rb") as stream:
        stream.seek(max(0, size - OUTPUT_SHOWN))
        text = stream.read().decode("utf-8", "replace")
    cut = f"[… {size - OUTPUT_SHOWN:,} bytes before this not shown]\n" if size > OUTPUT_SHOWN else ""
    sys.stderr.write(cut + text + ("" if text.endswith("\n") else "\n"))


# --- the child ------------------------------------------------------------------------------------------------------

def _import(where):
    import importlib
    import importlib.util
    path = Path(where)
    if where.endswith(".py") or path.exists():
        spec = importlib.util.spec_from_file_location(f"backproof_user_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        sys.path.insert(0, str(path.resolve().parent))          # so the file can import its neighbours
        spec.loader.exec_module(module)
        return module
    return importlib.import_module(where)


def as_array(value):
    """NumPy arrays, torch tensors (detached, even if they require grad) and JAX arrays -> a NumPy array; anything
    else as NumPy takes it. The one conversion of a user's answer, in the child and in ``verify``'s own thread."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):       # a torch tensor, without importing torch
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _gradients(function, request, folder):
    with np.load(folder / "arrays.npz", allow_pickle=False) as data:
        arrays = {key: np.array(data[key]) for key in data.files}
    params = {key[len("param:"):]: value for key, value in arrays.items() if key.startswith("param:")}
    answer = function(params, arrays["inputs"], arrays["targets"])
    (folder / "returned").touch()
    if not hasattr(answer, "keys"):
        return {"type": type(answer).__name__}, {}
    names, values, unreadable = [], {}, []
    for k, key in enumerate(answer.keys()):
        names.append(str(key))
        try:
            array = as_array(answer[key])
        except Exception:  # an object NumPy cannot make an array of
            unreadable.append(str(key))
            continue
        if array.dtype.kind not in "biufc":
            unreadable.append(str(key))
            continue
        values[f"value{k}"] = array
    return {"type": "dict", "names": names, "unreadable": unreadable}, values


def _torch_module(function, request, folder):
    """The module the factory returns, read as torch.fx traces it (weights.from_torch_module), and its own output after
    each layer on the given inputs (weights.layer_outputs): the parent proves the scenario against them."""
    from .weights import WeightsError, from_torch_module, layer_outputs
    module = function()
    (folder / "returned").touch()
    try:
        layers, dtype, names = from_torch_module(module, request["label"])
    except WeightsError as exc:
        return {"error": str(exc)}, {}
    except Exception as exc:  # a bfloat16, lazy or meta-device module: its weights are no NumPy arrays
        return {"error": f"{request['label']}: the module's weights cannot be read as float64 or float32 arrays "
                         f"({_described(exc)})"}, {}
    with np.load(folder / "arrays.npz", allow_pickle=False) as data:
        inputs = np.array(data["inputs"])
    try:
        seen = layer_outputs(module, inputs)
    except Exception as exc:  # the inputs do not fit the module: the user's --inputs, named
        return {"error": f"{request['label']}: the module cannot run on --inputs of shape {inputs.shape} "
                         f"({_described(exc)})"}, {}
    values, meta = {}, []
    for k, (layer, nodes) in enumerate(zip(layers, names)):
        arrays = [key for key, value in layer.items() if isinstance(value, np.ndarray)]   # weight, bias, buffers
        for key in arrays:
            values[f"{key}{k}"] = layer[key]
        values[f"output{k}"] = seen[nodes[-1]]                 # the module's own value after layer k's activation
        meta.append({key: value for key, value in layer.items() if key not in arrays and key not in ("weight", "bias")}
                    | {"bias": layer.get("bias") is not None, "weight": "weight" in layer, "nodes": nodes,
                       "arrays": arrays})
    return {"layers": meta, "dtype": dtype}, values


def _layer_backward(function, request, folder):
    """One layer's backward pass (layer_verify): backward(x, params, dout) -> {"x": dx, …}; or, with a forward, the
    course style forward(x, *params, **config) -> (out, cache) then backward(dout, cache) -> (dx, dW, …)."""
    with np.load(folder / "arrays.npz", allow_pickle=False) as data:
        arrays = {key: np.array(data[key]) for key in data.files}
    params = {key[len("param:"):]: value for key, value in arrays.items() if key.startswith("param:")}
    options = request["options"]
    values = {}
    if options.get("loss"):                 # the course's softmax_loss(x, y) -> (loss, dx)
        answer = function(arrays["x"], arrays["targets"])
        (folder / "returned").touch()
        if not isinstance(answer, (tuple, list)) or len(answer) != 2:
            return {"error": f"{request['label']} must return (loss, dx), the course's softmax_loss(x, y) "
                             f"signature"}, {}
        values["out"] = np.asarray(as_array(answer[0]), np.float64)
        answer = {"x": answer[1]}
    elif request.get("forward") is None:
        answer = function(arrays["x"], params, arrays["dout"])
        (folder / "returned").touch()
        if not hasattr(answer, "keys"):
            return {"error": f"{request['label']} returned a {type(answer).__name__}, not a dict of "
                             f"{', '.join(options['names'])}"}, {}
        answer = {str(key): answer[key] for key in answer.keys()}
    else:
        out, cache = request["forward"](arrays["x"], *params.values(), **options["config"])
        values["out"] = as_array(out)
        answer = function(arrays["dout"], cache)
        (folder / "returned").touch()
        answer = answer if isinstance(answer, (tuple, list)) else (answer,)
        if len(answer) != len(options["names"]):
            return {"error": f"{request['label']} returned {len(answer)} arrays; it must return "
                             f"{len(options['names'])}: d{', d'.join(options['names'])}"}, {}
        answer = dict(zip(options["names"], answer))
    for key, value in answer.items():
        try:
            values[f"d:{key}"] = np.asarray(as_array(value), np.float64)
        except Exception as exc:  # an object NumPy cannot make a float array of
            return {"error": f"{request['label']}: what it returned for {key} is no array of numbers "
                             f"({_described(exc)})"}, {}
    return {"returned": sorted(answer)}, values


KINDS = {"gradients": _gradients, "torch_module": _torch_module, "layer_backward": _layer_backward}


def _answer(folder, metadata, values):
    """answer.npz, then answer.json by rename: the parent reads an answer only once both are whole."""
    np.savez(folder / "answer.npz", **values)
    (folder / "answer.part").write_text(json.dumps(metadata))
    os.replace(folder / "answer.part", folder / "answer.json")


def child(folder):
    folder = Path(folder)
    request = json.loads((folder / "request.json").read_text())
    label, where = request["label"], request["where"]
    (folder / "importing").touch()
    try:
        module = _import(where)
    except BaseException as exc:  # SyntaxError, ImportError, SystemExit, anything the module raises
        _answer(folder, {"error": f"{where}: cannot be imported: {_described(exc)}"}, {})
        return
    (folder / "imported").touch()
    function = getattr(module, request["name"], None)
    if function is None:
        _answer(folder, {"error": f"{where}: has no function {request['name']!r}"}, {})
        return
    forward = request["options"].get("forward")
    if forward is not None:                      # layer_backward's course style: forward from the same file
        request["forward"] = getattr(module, forward, None)
        if not callable(request["forward"]):
            _answer(folder, {"error": f"{where}: has no function {forward!r} (--forward)"}, {})
            return
    if not callable(function):
        _answer(folder, {"error": f"{where}: {request['name']} is a {type(function).__name__}, not a function"}, {})
        return
    try:
        metadata, values = KINDS[request["kind"]](function, request, folder)
    except SystemExit as exc:
        metadata, values = {"error": f"{label} called sys.exit({exc.code!r}) instead of returning"}, {}
    except KeyboardInterrupt:
        metadata, values = {"error": f"{label} raised KeyboardInterrupt"}, {}
    except BaseException as exc:  # the user's code failing is bad input, reported in one line
        metadata, values = {"error": f"{label} raised {_described(exc)}"}, {}
    _answer(folder, metadata, values)


def _described(exc):
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return " ".join(text.split())[:500]


def main(folder):
    """The child's entry point (CHILD): answer, then end at once."""
    child(folder)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)         # the answer is written: no user thread or atexit hook may change the exit now


# The child imports this module without running backproof/__init__.py, which imports the whole harness (check, verify,
# report …) that a gradient function's child never calls: the package stands bare while this module is imported, then
# leaves, so the user's code (and ``from .weights import …``, for a torch module) imports the real one if it asks.
CHILD = ("import sys, types; package = types.ModuleType('backproof'); package.__path__ = [sys.argv[2]]; "
         "sys.modules['backproof'] = package; from backproof.sandbox import main; del sys.modules['backproof']; "
         "main(sys.argv[1])")
