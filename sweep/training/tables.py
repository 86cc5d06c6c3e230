"""Writing tidy per-epoch tables: Parquet by extension, else CSV (both with pyarrow)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq


def write_table(table: pa.Table, path: str | Path) -> Path:
    """Write ``table`` to ``path`` as Parquet if it ends in .parquet, else as CSV."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    if path.suffix == ".parquet":
        pq.write_table(table, tmp)
    else:
        pacsv.write_csv(table, tmp)
    tmp.replace(path)
    return path


def read_table(path: str | Path) -> pa.Table:
    """Read a table written by ``write_table``."""
    path = Path(path)
    return pq.read_table(path) if path.suffix == ".parquet" else pacsv.read_csv(path)
