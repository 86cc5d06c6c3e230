"""Sweeps: Ray Tune grids, MLflow tracking and the ``ibsweep`` command line."""
