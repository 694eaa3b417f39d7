"""Post-hoc embedding conditioning (whitening and friends) and STS evaluation.

``reglab.embeddings`` holds the transforms (registered with kind
"embedding", form "posthoc"; one paper per module: ``classic``,
``whitening``, ``zipfian_whitening``, ``all_but_the_top``, and the retrieval
compressions ``lvq``, ``leanvec`` and ``binary_quantization``, the multi-vector ``token_pooling`` and ``muvera``, on the shared
``base``), the sentence encoders (the optional ``text`` extra) and the
STS and BEIR evaluations behind ``reglab sts`` and ``reglab retrieval``.
"""

from reglab.embeddings.base import EmbeddingTransform, NotFittedError, Pipeline
from reglab.embeddings.classic import Center, Normalize
from reglab.embeddings.whitening import Whitening
from reglab.embeddings.zipfian_whitening import ZipfianWhitening
from reglab.embeddings.all_but_the_top import AllButTheTop
from reglab.embeddings.lvq import LVQ, LVQCodes
from reglab.embeddings.leanvec import LeanVec
from reglab.embeddings.binary_quantization import BinaryQuantization
from reglab.embeddings.token_pooling import TokenPooling
from reglab.embeddings.muvera import MUVERA
from reglab.embeddings.encoders import (
    CachedEncoder,
    MiniLMEncoder,
    SentenceEncoder,
    StaticTokenEncoder,
    get_encoder,
)
from reglab.embeddings.sts import evaluate_sts, read_sts_file

__all__ = [
    "AllButTheTop",
    "BinaryQuantization",
    "CachedEncoder",
    "Center",
    "EmbeddingTransform",
    "LVQ",
    "LVQCodes",
    "LeanVec",
    "MiniLMEncoder",
    "Normalize",
    "NotFittedError",
    "Pipeline",
    "SentenceEncoder",
    "StaticTokenEncoder",
    "TokenPooling",
    "MUVERA",
    "Whitening",
    "ZipfianWhitening",
    "evaluate_sts",
    "get_encoder",
    "read_sts_file",
]
