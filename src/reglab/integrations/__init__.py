"""Where practitioners already train: Lightning and the Hugging Face Trainer.

Each integration lives in its own module and imports its library only there
(optional extras; from a checkout: ``pip install -e ".[lightning]"``, ``pip install -e ".[transformers]"``).
"""
