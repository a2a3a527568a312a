"""Writes past Python's sys.stdout, straight to file descriptor 1 (as C extensions and subprocesses do)."""
import os
import subprocess
import sys

from _correct import correct


def gradients(params, inputs, targets):
    os.write(1, b"written to fd 1, not JSON\n")
    subprocess.run([sys.executable, "-c", "print('a subprocess printing')"], check=True)
    return correct(params, inputs, targets)
