"""Experiment functions registered as lab tasks (one module per family)."""
