"""representations regularizers."""

__all__: list[str] = []
