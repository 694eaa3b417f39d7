"""Plain-Python building blocks for the independent references: lists of floats, no reglab."""

from __future__ import annotations

import math


def mean(xs):
    return sum(xs) / len(xs)


def var_unbiased(col):
    m = mean(col)
    return sum((c - m) ** 2 for c in col) / (len(col) - 1)


def cov_unbiased(a, b):
    ma, mb = mean(a), mean(b)
    return sum((x - ma) * (y - mb) for x, y in zip(a, b)) / (len(a) - 1)


def columns(z):
    """The columns of a list-of-rows matrix."""
    return [[row[j] for row in z] for j in range(len(z[0]))]


def unit(v):
    norm = math.sqrt(sum(x * x for x in v))
    return [x / norm for x in v]


def softmax(row):
    m = max(row)
    e = [math.exp(v - m) for v in row]
    s = sum(e)
    return [v / s for v in e]


def mean_entropy(z):
    """Batch mean of the softmax's Shannon entropy (nats) of a (n, C) tensor of logits."""
    return sum(-sum(p * math.log(p) for p in softmax(row)) for row in z.tolist()) / z.shape[0]
