"""Where file-backed datasets are looked for, and the errors that name what is missing or bad."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ibsweep.models.datasets.base import DatasetError

ENV_VAR = "IBSWEEP_DATA_DIR"


@dataclass(frozen=True)
class DataRoot:
    """The data directory (absolute) and what set it, for error messages."""

    path: Path
    origin: str


def resolve_data_root(data_dir: str | Path | None) -> DataRoot:
    """The data directory: the argument, else $IBSWEEP_DATA_DIR, else ./data."""
    if data_dir is not None:
        raw, origin = data_dir, "the data_dir argument"
    elif os.environ.get(ENV_VAR):
        raw, origin = os.environ[ENV_VAR], f"${ENV_VAR}"
    else:
        raw, origin = "data", f"the default ./data (no data_dir argument, ${ENV_VAR} unset)"
    # Absolute, so messages stay meaningful where the working directory differs (Ray workers).
    return DataRoot(Path(raw).expanduser().absolute(), origin)


@dataclass(frozen=True)
class DataFiles:
    """The files one dataset needs (each with alternative names) and where users get them."""

    dataset: str
    names: tuple[tuple[str, ...], ...]
    source: str

    def locate(self, root: DataRoot, folders: tuple[Path, ...]) -> list[Path]:
        """Each file's path in the first folder holding any of them (first alternative found)."""
        where = f"searched {' then '.join(map(str, folders))}; data directory from {root.origin}"
        if not root.path.is_dir():
            raise DatasetError(
                f"{self.dataset}: data directory {root.path} does not exist ({where}); "
                f"it should hold {self.source} (nothing is downloaded at run time)"
            )
        folder = next((f for f in folders if any(p.is_file() for p in self._paths(f))), None)
        if folder is None:
            wanted = ", ".join(alts[0] for alts in self.names)
            raise DatasetError(
                f"{self.dataset}: no {self.dataset} files found ({where}); "
                f"expected {wanted} from {self.source} (nothing is downloaded at run time)"
            )
        found = []
        for alts in self.names:
            path = next((folder / n for n in alts if (folder / n).is_file()), None)
            if path is None:
                raise DatasetError(
                    f"{self.dataset}: missing file {' or '.join(alts)} in {folder} ({where}); "
                    f"it comes with {self.source}"
                )
            found.append(path)
        return found

    def bad_file(self, path: Path, problem: str) -> DatasetError:
        """The error for a file that exists but cannot be used."""
        problem = " ".join(problem.split())  # keep the message on one line
        return DatasetError(
            f"{self.dataset}: unusable file {path}: {problem}; a good copy comes with {self.source}"
        )

    def _paths(self, folder: Path) -> list[Path]:
        return [folder / n for alts in self.names for n in alts]
