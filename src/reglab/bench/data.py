"""Small real data for the lab: scikit-learn's bundled digits, split by seed.

Everything is deterministic given the seed: the same split and the same
label noise for every arm of a paired comparison.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Split:
    x_train: torch.Tensor  # (n, 64) float32 in [0, 1]
    y_train: torch.Tensor  # (n,) long, possibly noisy
    x_test: torch.Tensor
    y_test: torch.Tensor  # always clean
    y_train_clean: torch.Tensor
    num_classes: int = 10

    @property
    def noisy_mask(self) -> torch.Tensor:
        return self.y_train != self.y_train_clean

    def images(self, x: torch.Tensor) -> torch.Tensor:
        """(n, 64) -> (n, 1, 8, 8) for convolutional models."""
        return x.reshape(-1, 1, 8, 8)


def digits(
    seed: int,
    *,
    test_fraction: float = 0.3,
    train_fraction: float = 1.0,
    label_noise: float = 0.0,
) -> Split:
    """The digits set (1,797 8×8 images), stratified split by ``seed``.

    ``train_fraction`` keeps a stratified subset of the training split (the
    "small data" setting). ``label_noise`` flips that share of training labels
    to a uniformly drawn *different* class (symmetric noise); test labels stay
    clean.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = (data.data / 16.0).astype(np.float32)
    y = data.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_fraction, random_state=seed, stratify=y)
    if train_fraction < 1.0:
        x_tr, _, y_tr, _ = train_test_split(
            x_tr, y_tr, train_size=train_fraction, random_state=seed, stratify=y_tr
        )
    y_clean = y_tr.copy()
    if label_noise > 0:
        rng = np.random.default_rng(seed + 10_000)
        flip = rng.random(len(y_tr)) < label_noise
        offsets = rng.integers(1, 10, size=len(y_tr))
        y_tr = np.where(flip, (y_tr + offsets) % 10, y_tr)
    t = torch.from_numpy
    return Split(t(x_tr), t(y_tr), t(x_te), t(y_te), t(y_clean))


def augment_digits(x: torch.Tensor, generator: torch.Generator, noise: float = 0.1, max_shift: int = 1) -> torch.Tensor:
    """A random view of (n, 64) digits: a per-sample pixel shift of up to
    ``max_shift`` in each direction (zero fill) plus Gaussian pixel noise."""
    n = x.shape[0]
    img = x.reshape(n, 1, 8, 8)
    pad = torch.nn.functional.pad(img, (max_shift,) * 4)
    dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator)
    dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(8)[None, :])[:, :, None].expand(n, 8, 8)
    cols = (dx[:, None] + torch.arange(8)[None, :])[:, None, :].expand(n, 8, 8)
    out = pad[torch.arange(n)[:, None, None], 0, rows, cols]
    out = out + noise * torch.randn(out.shape, generator=generator)
    return out.reshape(n, 64)
