import time

while True:
    time.sleep(0.01)


def gradients(params, inputs, targets):
    return {}
