"""The package as it installs: one top-level name, every subpackage listed, no import cycles."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"ibsweep": "ibsweep", "models": "ibsweep.models", "analysis": "ibsweep.analysis"}
FOLDERS |= {"sweep": "ibsweep.sweep", "examples": "ibsweep.examples"}


def _modules() -> dict[str, Path]:
    """Every module of the installed package by its dotted name."""
    out = {}
    for folder, package in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            parts = parts[:-1] if parts[-1] == "__init__" else parts
            out[".".join((package, *parts))] = path
    return out


def _dependencies(modules: dict[str, Path]) -> dict[str, set[str]]:
    """For each module, the project modules it imports (a submodule, not its package, when
    ``from package import submodule`` names only submodules)."""
    graph = {}
    for name, path in modules.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                subs = [f"{node.module}.{a.name}" for a in node.names]
                subs = [s for s in subs if s in modules]
                wanted = subs if len(subs) == len(node.names) else [node.module, *subs]
            elif isinstance(node, ast.Import):
                wanted = [a.name for a in node.names]
            else:
                continue
            deps |= {w for w in wanted if w in modules and w != name}
        graph[name] = deps
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert _cycles(graph) == [["a", "b", "c"]]


def test_no_import_cycles_between_modules():
    assert _cycles(_dependencies(_modules())) == []


def test_every_subpackage_is_listed_for_the_wheel():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    on_disk = {name for name, path in _modules().items() if path.name == "__init__.py"}
    assert listed == on_disk
    assert config["package-dir"] == {package: folder for folder, package in FOLDERS.items()}


@pytest.mark.slow
def test_a_wheel_installs_one_top_level_package_that_runs_from_any_folder(tmp_path):
    """A non-editable install: only ``ibsweep`` in site-packages, the shipped sweeps with it."""
    source = tmp_path / "source"  # a copy: building in place would leave build/ behind
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".*", "build", "*.egg-info"))
    wheels = tmp_path / "wheels"
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    subprocess.run([*build, "-w", str(wheels), str(source)], check=True, capture_output=True)
    (wheel,) = wheels.glob("*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True, capture_output=True, text=True,
        ).stdout.strip()
    )  # fmt: skip
    before = {p.name for p in site.iterdir()}
    pip = [str(python), "-m", "pip", "install", "--no-deps", "--no-index", "-q"]
    subprocess.run([*pip, str(wheel)], check=True, capture_output=True)
    added = {p.name for p in site.iterdir()} - before
    assert added == {"ibsweep", f"{wheel.name.split('-py3')[0]}.dist-info"}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": ""}
    plan = subprocess.run(
        [str(venv / "bin" / "ibsweep"), "plan", "quick"],
        cwd=elsewhere, capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert plan.returncode == 0, plan.stderr
    assert str(site / "ibsweep" / "examples" / "quick.yaml") in plan.stdout
    assert "4 configurations x 3 seeds" in plan.stdout
