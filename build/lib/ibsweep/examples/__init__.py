"""The example sweep files, shipped with the package (``ibsweep`` with no arguments runs quick)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def example_path(name: str) -> Path:
    """The path of the shipped example sweep ``name`` (e.g. 'quick' or 'paper.yaml')."""
    file = name if name.endswith(".yaml") else f"{name}.yaml"
    path = Path(str(resources.files(__name__) / file))
    if not path.is_file():
        raise FileNotFoundError(f"no example sweep '{name}'; shipped: {', '.join(examples())}")
    return path


def examples() -> list[str]:
    """The names of the shipped example sweeps."""
    return sorted(
        p.name[:-5] for p in resources.files(__name__).iterdir() if p.name.endswith(".yaml")
    )
