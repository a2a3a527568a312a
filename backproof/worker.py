"""One framework's share of a concurrent run: ``python -m backproof.worker``.

Reads a pickled (fn, [framework, …]) from stdin, runs fn for each framework in turn as
``frameworks.run_each`` would, and writes the pickled {framework: ("ran" | "error", value, seconds)}
to stdout. Anything the work prints goes to stderr,
so it can never corrupt the answer. Started by ``frameworks.run_each(parallel=True)``.
"""

import os
import pickle
import sys


def main():
    answer = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())      # prints inside the work land on stderr
    fn, frameworks = pickle.load(sys.stdin.buffer)
    from backproof.frameworks import _timed
    pickle.dump({name: _timed(fn, name) for name in frameworks}, answer)
    answer.close()


if __name__ == "__main__":
    main()
    sys.stderr.flush()
    os._exit(0)     # the answer is written: skip the seconds torch's and JAX's teardown would take
