"""Small real data for the lab, split by seed into train / validation / test.

Datasets (``load(name, seed, ...)``):

* ``digits``: scikit-learn's bundled digits (1,797 8×8 images, pixels / 16),
  30% test, then 20% of the rest for validation.
* ``digits_half``: the same images split 50/50 (then 20% of the training
  half for validation): less training data, a larger test split. Effects
  that only exist when the model has enough data to memorize show up here.
* ``mnist1d``: MNIST-1D (Greydanus & Kobak, ICML 2024; pip ``mnist1d``):
  5,000 one-dimensional signals of length 40, built offline with the
  package's ``make_dataset`` and its default arguments (never its download
  path); the 5,000 are pooled and split 20% test, then 20% validation, so
  the split varies with the seed like the others.

Everything is deterministic given the seed: every arm of a paired
comparison sees the same split and the same label noise. Label noise flips
training *and* validation labels (a practitioner's validation split is as
noisy as their training data); test labels stay clean.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from reglab.bench.tasks import TaskUnavailable

__all__ = ["Split", "load", "digits", "DATASETS", "augment_digits"]

#: name -> (description, test fraction)
DATASETS: dict[str, tuple[str, float]] = {
    "digits": ("scikit-learn digits (1,797 8×8 images, 10 classes)", 0.3),
    "digits_half": ("scikit-learn digits, split 50/50 (1,797 8×8 images, 10 classes)", 0.5),
    "mnist1d": ("MNIST-1D (Greydanus & Kobak 2024; 5,000 signals of length 40, 10 classes; make_dataset defaults)", 0.2),
}
VAL_FRACTION = 0.2


@dataclass
class Split:
    name: str
    x_train: torch.Tensor  # (n, d) float32
    y_train: torch.Tensor  # (n,) long, possibly noisy
    x_val: torch.Tensor
    y_val: torch.Tensor  # noisy like the training labels
    x_test: torch.Tensor
    y_test: torch.Tensor  # always clean
    y_train_clean: torch.Tensor
    y_val_clean: torch.Tensor
    image_shape: tuple[int, ...]  # (1, 8, 8) for digits, (1, 40) for MNIST-1D
    num_classes: int = 10

    @property
    def num_features(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def noisy_mask(self) -> torch.Tensor:
        return self.y_train != self.y_train_clean

    def images(self, x: torch.Tensor) -> torch.Tensor:
        """(n, d) -> (n, *image_shape) for convolutional models."""
        return x.reshape(-1, *self.image_shape)

    def describe(self) -> str:
        """``"digits: train 1005 / val 252 / test 540"`` for reports."""
        return (
            f"{self.name}: train {len(self.y_train)} / val {len(self.y_val)} / test {len(self.y_test)}"
        )


@functools.lru_cache(maxsize=None)
def _pool(name: str) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    if name in ("digits", "digits_half"):
        from sklearn.datasets import load_digits

        data = load_digits()
        return (data.data / 16.0).astype(np.float32), data.target.astype(np.int64), (1, 8, 8)
    if name == "mnist1d":
        try:
            from mnist1d.data import get_dataset_args, make_dataset
        except ImportError as err:
            raise TaskUnavailable("MNIST-1D needs the pip package `mnist1d` (pip install mnist1d)") from err
        import random

        # make_dataset seeds numpy's and Python's global generators; keep the caller's state.
        np_state, py_state = np.random.get_state(), random.getstate()
        try:
            d = make_dataset(get_dataset_args())  # built locally from templates, no download
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)
        x = np.concatenate([d["x"], d["x_test"]]).astype(np.float32)
        y = np.concatenate([d["y"], d["y_test"]]).astype(np.int64)
        return x, y, (1, x.shape[1])
    raise KeyError(f"unknown lab dataset {name!r}; known: {sorted(DATASETS)}")


def _flip(y: np.ndarray, rate: float, rng: np.random.Generator, num_classes: int) -> np.ndarray:
    """Symmetric noise: a share ``rate`` of labels moves to a uniformly drawn *different* class."""
    flip = rng.random(len(y)) < rate
    offsets = rng.integers(1, num_classes, size=len(y))
    return np.where(flip, (y + offsets) % num_classes, y)


def stratified_share(y: np.ndarray | torch.Tensor, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(kept, rest)`` of a stratified ``share`` of the labels ``y``, drawn by ``seed``
    (every class keeps its proportion). ``share >= 1`` keeps everything."""
    from sklearn.model_selection import train_test_split

    labels = y.numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
    idx = np.arange(len(labels))
    if share >= 1.0:
        return idx, idx[:0]
    kept, rest = train_test_split(idx, train_size=share, random_state=seed, stratify=labels)
    return kept, rest


def load(name: str, seed: int, *, train_fraction: float = 1.0, label_noise: float = 0.0) -> Split:
    """A stratified train / validation / test split of dataset ``name`` drawn by ``seed``.

    ``train_fraction`` keeps a stratified share of the training *and*
    validation splits (the small-data setting: all labelled data is scarce).
    ``label_noise`` flips that share of training and validation labels.
    """
    from sklearn.model_selection import train_test_split

    if name not in DATASETS:
        raise KeyError(f"unknown lab dataset {name!r}; known: {sorted(DATASETS)}")
    x, y, shape = _pool(name)
    test_fraction = DATASETS[name][1]
    x_rest, x_te, y_rest, y_te = train_test_split(x, y, test_size=test_fraction, random_state=seed, stratify=y)
    x_tr, x_va, y_tr, y_va = train_test_split(
        x_rest, y_rest, test_size=VAL_FRACTION, random_state=seed, stratify=y_rest
    )
    if train_fraction < 1.0:
        keep = stratified_share(y_tr, train_fraction, seed)[0]
        x_tr, y_tr = x_tr[keep], y_tr[keep]
        keep = stratified_share(y_va, train_fraction, seed)[0]
        x_va, y_va = x_va[keep], y_va[keep]
    num_classes = int(y.max()) + 1
    y_tr_clean, y_va_clean = y_tr.copy(), y_va.copy()
    if label_noise > 0:
        rng = np.random.default_rng(seed + 10_000)
        y_tr = _flip(y_tr, label_noise, rng, num_classes)
        y_va = _flip(y_va, label_noise, rng, num_classes)
    t = torch.from_numpy
    return Split(
        name, t(x_tr), t(y_tr), t(x_va), t(y_va), t(x_te), t(y_te), t(y_tr_clean), t(y_va_clean), shape, num_classes
    )


def digits(seed: int, *, train_fraction: float = 1.0, label_noise: float = 0.0) -> Split:
    """``load("digits", seed, ...)``."""
    return load("digits", seed, train_fraction=train_fraction, label_noise=label_noise)


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
