"""stochastic regularizers."""

__all__: list[str] = []
