"""The code base is ruff-clean (lint and format), as configured in pyproject.toml."""

import ast
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("args", [["check", "."], ["format", "--check", "."]])
def test_ruff_is_clean(args):
    ruff = shutil.which("ruff")
    assert ruff, "ruff is part of the test extra: pip install -e '.[test]'"
    proc = subprocess.run([ruff, *args], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-1000:]


# sweep may use models and analysis; analysis never imports sweep; models imports neither
FORBIDDEN = {"analysis": {"sweep"}, "models": {"sweep", "analysis"}, "sweep": set()}
SUBPACKAGES = set(FORBIDDEN)


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every absolute import in a file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_go_one_way(package):
    wrong = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for line, name in _imports(path):
            parts = name.split(".")
            if parts[0] == "ibsweep" and len(parts) > 1 and parts[1] in FORBIDDEN[package]:
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert not wrong, "\n".join(wrong)


def test_project_modules_are_imported_through_the_ibsweep_package():
    """models, analysis and sweep install as ibsweep.*: a bare ``import sweep`` finds nothing."""
    paths = ROOT.glob("*/**/*.py")
    wrong = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for path in sorted(paths)
        if ".venv" not in path.parts
        for line, name in _imports(path)
        if name.split(".")[0] in SUBPACKAGES
    ]
    assert not wrong, "\n".join(wrong)
