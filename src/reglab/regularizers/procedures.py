"""procedures regularizers."""

__all__: list[str] = []
