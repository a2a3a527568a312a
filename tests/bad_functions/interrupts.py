def gradients(params, inputs, targets):
    raise KeyboardInterrupt
