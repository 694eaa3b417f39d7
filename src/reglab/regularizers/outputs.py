"""outputs regularizers."""

__all__: list[str] = []
