"""Checks on rates estimated by repetition (false-positive rates, coverage)."""

import math


def binomial_band(p: float, n: int, z: float = 3.0) -> tuple[float, float]:
    """Range of a rejection rate of n independent tests at true rate p, within z sd."""
    sd = math.sqrt(p * (1 - p) / n)
    return p - z * sd, p + z * sd
