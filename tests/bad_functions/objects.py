def gradients(params, inputs, targets):
    return {name: [["not", "numbers"]] for name in params}
