"""The post-hoc embedding transforms under one name (compatibility re-export).

Each transform lives in its own module, one paper per file:
``reglab.embeddings.base`` (the base class, input handling, pipelines),
``reglab.embeddings.classic`` (centering, normalization),
``reglab.embeddings.whitening``, ``reglab.embeddings.zipfian_whitening``
and ``reglab.embeddings.all_but_the_top``.
"""

from __future__ import annotations

from reglab.embeddings.all_but_the_top import AllButTheTop
from reglab.embeddings.base import EmbeddingTransform, NotFittedError, Pipeline
from reglab.embeddings.classic import Center, Normalize
from reglab.embeddings.whitening import Whitening
from reglab.embeddings.zipfian_whitening import ZipfianWhitening

__all__ = [
    "NotFittedError",
    "EmbeddingTransform",
    "Center",
    "Normalize",
    "Whitening",
    "ZipfianWhitening",
    "AllButTheTop",
    "Pipeline",
]
