import time


def gradients(params, inputs, targets):
    while True:
        time.sleep(0.01)
