"""The correct gradients of grokking-3-4-1 (the reference's backward pass), for the functions here to spoil."""

import backproof
from reference import loss_and_gradients

SCENARIO = backproof.load("grokking-3-4-1")


def correct(params, inputs, targets):
    return loss_and_gradients(SCENARIO, params, inputs, targets)[1]
