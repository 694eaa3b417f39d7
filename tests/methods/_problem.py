"""A tiny classification problem for the procedure regularizers (SAM, AMP, gradient norm)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def make_problem(dtype=torch.float32):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).to(dtype)
    x = torch.randn(16, 5, dtype=dtype)
    y = torch.randint(0, 3, (16,))
    return model, x, y


def loss_of(model, x, y):
    return F.cross_entropy(model(x), y)
