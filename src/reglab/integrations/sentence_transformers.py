"""reglab's embedding transforms as a sentence-transformers module.

    model = SentenceTransformer("all-MiniLM-L6-v2")
    whiten = EmbeddingTransformModule(Whitening(k=128).fit(model.encode(corpus)))
    model.append(whiten)          # model.encode(...) now returns whitened embeddings
    model.save("minilm-whitened") # the fitted transform is saved with the model
    SentenceTransformer("minilm-whitened", trust_remote_code=True)  # and loads back

sentence-transformers asks for ``trust_remote_code=True`` because the module's
class lives outside its package (here: in reglab, which must be installed).

The module rewrites ``features["sentence_embedding"]`` with the transform;
its config (the transform's ``get_config()``) and fitted statistics are
saved beside the model's other modules.
"""

from __future__ import annotations

import os
from typing import Any

import torch

try:
    from sentence_transformers.sentence_transformer.modules import Module
except ImportError:  # sentence-transformers < 5.2 keeps its modules here
    try:
        from sentence_transformers.models import Module  # type: ignore[no-redef]
    except ImportError as err:
        raise ImportError(
            "reglab.integrations.sentence_transformers needs sentence-transformers: pip install -e '.[text]' (from a reglab checkout)"
        ) from err

from reglab.core.registry import from_config
from reglab.embeddings.base import EmbeddingTransform

__all__ = ["EmbeddingTransformModule"]

STATE_FILE = "reglab_transform.pt"


class EmbeddingTransformModule(Module):
    """A fitted (or fit-free) ``EmbeddingTransform`` applied to the sentence embedding."""

    config_keys: list[str] = ["transform_config", "embedding_key"]

    def __init__(self, transform: EmbeddingTransform | dict[str, Any], embedding_key: str = "sentence_embedding"):
        super().__init__()
        self.transform = from_config(transform) if isinstance(transform, dict) else transform
        if not isinstance(self.transform, EmbeddingTransform):
            raise TypeError(f"EmbeddingTransformModule takes an embedding transform or its config, got {transform!r}")
        self.transform_config = self.transform.get_config()
        self.embedding_key = embedding_key

    def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = features.get(self.embedding_key)
        if x is not None:
            features[self.embedding_key] = self.transform.transform(x)
        return features

    def save(self, output_path: str, *args: Any, safe_serialization: bool = True, **kwargs: Any) -> None:
        self.save_config(output_path)
        torch.save(self.transform.state_dict(), os.path.join(output_path, STATE_FILE))

    @classmethod
    def load(cls, model_name_or_path: str = "", subfolder: str = "", **kwargs: Any) -> EmbeddingTransformModule:
        hub = {k: kwargs[k] for k in ("token", "cache_folder", "revision", "local_files_only") if k in kwargs}
        config = cls.load_config(model_name_or_path=model_name_or_path, subfolder=subfolder, **hub)
        module = cls(config["transform_config"], config.get("embedding_key", "sentence_embedding"))
        state_path = os.path.join(model_name_or_path, subfolder, STATE_FILE)
        if os.path.exists(state_path):
            module.transform.load_state_dict(torch.load(state_path, weights_only=True))
        elif module.transform._state_keys:
            raise FileNotFoundError(f"{state_path}: the fitted statistics of {type(module.transform).__name__} are missing")
        return module
