"""Post-hoc embedding conditioning (whitening and friends) and STS evaluation.

``reglab.embeddings`` holds the transforms (registered with kind
"embedding", form "posthoc"), the sentence encoders (optional extra
``reglab[text]``) and the STS evaluation behind ``reglab sts``.
"""

from reglab.embeddings.transforms import (
    AllButTheTop,
    Center,
    EmbeddingTransform,
    Normalize,
    NotFittedError,
    Pipeline,
    Whitening,
    ZipfianWhitening,
)
from reglab.embeddings.encoders import (
    CachedEncoder,
    MiniLMEncoder,
    SentenceEncoder,
    StaticTokenEncoder,
    get_encoder,
)
from reglab.embeddings.sts import TaskUnavailable, evaluate_sts, read_sts_file

__all__ = [
    "AllButTheTop",
    "CachedEncoder",
    "Center",
    "EmbeddingTransform",
    "MiniLMEncoder",
    "Normalize",
    "NotFittedError",
    "Pipeline",
    "SentenceEncoder",
    "StaticTokenEncoder",
    "TaskUnavailable",
    "Whitening",
    "ZipfianWhitening",
    "evaluate_sts",
    "get_encoder",
    "read_sts_file",
]
