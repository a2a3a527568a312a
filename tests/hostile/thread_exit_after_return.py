"""Returns a correct answer, and a thread ends the process with code 0 a moment later."""
import os
import threading
import time

from _correct import correct


def gradients(params, inputs, targets):
    threading.Thread(target=lambda: (time.sleep(0.05), os._exit(0)), daemon=True).start()
    return correct(params, inputs, targets)
