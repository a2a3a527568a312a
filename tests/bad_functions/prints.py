from _correct import correct


def gradients(params, inputs, targets):
    print("debugging output that must not reach --json")
    return correct(params, inputs, targets)
