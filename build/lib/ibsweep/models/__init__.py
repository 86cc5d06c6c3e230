"""Networks, datasets and training: what gets trained (imports neither sweep nor analysis)."""
