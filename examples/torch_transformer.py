"""A sequence classifier as a PyTorch user writes it, for ``backproof import-torch``: a linear embedding of each
step, LayerNorm and exact GELU, torch's own pre-LN TransformerEncoderLayer (2 heads, GELU), a mean over the steps,
BatchNorm1d in eval mode with its running statistics, SiLU and a linear head.

    backproof import-torch examples/torch_transformer.py:classifier --inputs "$(python examples/torch_transformer.py)" \\
        --targets "[0, 1, 1]" --loss cross_entropy -o /tmp/transformer.json
    backproof check /tmp/transformer.json
"""

import json

import torch
import torch.nn.functional as F
from torch import nn


class Classifier(nn.Module):
    def __init__(self, features=3, width=4, heads=2, classes=2):
        super().__init__()
        self.embed = nn.Linear(features, width)
        self.norm = nn.LayerNorm(width)
        self.block = nn.TransformerEncoderLayer(width, heads, dim_feedforward=8, dropout=0.0, activation="gelu",
                                                batch_first=True, norm_first=True)
        self.bn = nn.BatchNorm1d(width)
        self.head = nn.Linear(width, classes)

    def forward(self, x):                       # x: (n, T, features)
        x = F.gelu(self.norm(self.embed(x)))
        x = self.block(x).mean(dim=1)
        return self.head(F.silu(self.bn(x)))


def classifier():
    """The model in float64, its batch norm's running statistics moved by a few batches, then in eval mode."""
    torch.manual_seed(0)
    model = Classifier().double()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(5, 4, 3, dtype=torch.float64))
    return model.eval()


if __name__ == "__main__":
    torch.manual_seed(1)
    print(json.dumps(torch.randn(3, 4, 3, dtype=torch.float64).round(decimals=4).tolist()))
