"""outputs penalties (pure functions)."""

__all__: list[str] = []
