"""Sequence classifiers as a PyTorch user writes them, for ``backproof import-torch``: an nn.LSTM or nn.GRU
(batch_first) read at its last step by a linear head.

    backproof import-torch examples/torch_sequence.py:lstm --inputs "$(python examples/torch_sequence.py)" \\
        --targets "[0, 1, 1]" --loss cross_entropy -o /tmp/lstm.json
    backproof check /tmp/lstm.json
"""

import json

import torch
from torch import nn


class Classifier(nn.Module):
    def __init__(self, cell, features=3, hidden=4, classes=2):
        super().__init__()
        self.rnn = cell(features, hidden, batch_first=True)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x):                       # x: (n, T, features)
        out, _ = self.rnn(x)                    # every step's hidden state, and the final state (unused)
        return self.head(out[:, -1])


class Tagged(nn.Module):
    """Token indices (n, T) through an embedding whose row 0 pads, an LSTM, a head on the last step."""

    def __init__(self, vocabulary=5, width=3, hidden=4, classes=2):
        super().__init__()
        self.embed = nn.Embedding(vocabulary, width, padding_idx=0)
        self.rnn = nn.LSTM(width, hidden, batch_first=True)
        self.head = nn.Linear(hidden, classes)

    def forward(self, tokens):
        out, _ = self.rnn(self.embed(tokens))
        return self.head(out[:, -1])


def tokens():
    torch.manual_seed(2)
    return Tagged().double()


def lstm():
    torch.manual_seed(0)
    return Classifier(nn.LSTM).double()


def gru():
    torch.manual_seed(0)
    return Classifier(nn.GRU).double()


if __name__ == "__main__":
    torch.manual_seed(1)
    print(json.dumps(torch.randn(3, 5, 3, dtype=torch.float64).round(decimals=4).tolist()))
