"""Diagnostics on embeddings and models: effective rank, isotropy, sparsity, spectra."""
