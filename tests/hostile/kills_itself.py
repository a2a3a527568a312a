import os
import signal


def gradients(params, inputs, targets):
    os.kill(os.getpid(), signal.SIGKILL)
