"""The package's architecture, checked from the source: what may import what, and that every DVC
stage depends on all the project code it runs (so changing any of it reruns the stage)."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TOP_LEVEL = {"config", "errors", "files", "labels", "entry", "text"}
# Sub-package (or top-level module) → what of spamfilter it may import. `mail` (message parsing) sits
# just above the top level: the e-mail corpus reader, the model and the monitor all parse with it.
# `text` is the old import path of the preprocessing classes, kept for pickled models: it re-exports
# spamfilter.modeling.text.
ALLOWED = {
    "config": {"errors", "labels"},
    "errors": set(),
    "files": set(),
    "labels": set(),
    "entry": {"errors"},
    "text": {"modeling"},
    "data": (TOP_LEVEL - {"text"}) | {"mail"},
    "mail": TOP_LEVEL - {"text"},
    "modeling": (TOP_LEVEL - {"text"}) | {"mail"},
    "registry": (TOP_LEVEL - {"text"}) | {"data", "modeling"},
    "monitoring": (TOP_LEVEL - {"text"}) | {"data", "modeling", "registry", "mail"},
    "cli": None,  # the command may use everything
}


def module_file(module: str) -> Path | None:
    """The file of a project module (`spamfilter.data.corpus`, `stages.train`), or None if not ours."""
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_modules(path: Path) -> Iterator[str]:
    """Every module a file imports, at module level or inside functions (lazy imports count too)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            yield base
            # `from spamfilter.data import corpus` imports the module spamfilter.data.corpus.
            yield from (f"{base}.{alias.name}" for alias in node.names)


def project_closure(start: Path) -> set[Path]:
    """The project files `start` runs: its own imports, theirs, and every package `__init__` on the way."""
    seen: set[Path] = set()
    todo = [start]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for module in imported_modules(path):
            if not module.startswith(("spamfilter", "stages")):
                continue
            parts = module.split(".")
            for depth in range(1, len(parts) + 1):
                found = module_file(".".join(parts[:depth]))
                if found is not None and found not in seen:
                    todo.append(found)
    return seen


def stages() -> Iterator[tuple[str, dict[str, object]]]:
    for name, stage in yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"].items():
        yield name, stage.get("do", stage)


def covered(path: Path, deps: list[str]) -> bool:
    relative = path.relative_to(ROOT)
    return any(relative == Path(dep) or Path(dep) in relative.parents for dep in deps)


@pytest.mark.parametrize("name", [name for name, _ in stages()])
def test_each_stage_depends_on_all_the_code_it_runs(name: str) -> None:
    stage = dict(stages())[name]
    script = re.search(r"python (stages/\w+\.py)", str(stage["cmd"]))
    assert script, f"stage {name}: no `python stages/<name>.py` in its cmd"
    deps = [str(dep) for dep in stage.get("deps", [])]  # type: ignore[attr-defined]
    missing = sorted(
        str(path.relative_to(ROOT)) for path in project_closure(ROOT / script.group(1)) if not covered(path, deps)
    )
    assert not missing, f"stage {name} runs code its deps do not name: {missing}"


def test_the_dependency_check_sees_lazy_imports(tmp_path: Path) -> None:
    """The closure follows imports inside functions, where mlflow-heavy modules are imported."""
    closure = project_closure(ROOT / "stages" / "train.py")
    assert ROOT / "spamfilter" / "registry" / "tracking.py" in closure  # imported inside main()


def library_modules() -> Iterator[Path]:
    yield from sorted((ROOT / "spamfilter").rglob("*.py"))


def area_of(path: Path) -> str:
    parts = path.relative_to(ROOT / "spamfilter").with_suffix("").parts
    return parts[0]


@pytest.mark.parametrize("path", list(library_modules()), ids=lambda p: str(p.relative_to(ROOT)))
def test_library_imports_follow_the_layering(path: Path) -> None:
    area = area_of(path)
    if area == "__init__":
        return
    allowed = ALLOWED.get(area)
    imported = {m for m in imported_modules(path) if m.split(".")[0] in {"spamfilter", "api", "stages"}}
    assert not {m for m in imported if m.split(".")[0] in {"api", "stages"}}, f"{path}: imports api or stages"
    if allowed is None:
        return
    reached = {m.split(".")[1] for m in imported if m.count(".") >= 1 and module_file(".".join(m.split(".")[:2]))}
    forbidden = reached - allowed - {area}
    assert not forbidden, f"{path} ({area}) imports {sorted(forbidden)}; {area} may import {sorted(allowed)}"


def test_only_the_tracking_module_imports_mlflow() -> None:
    importers = sorted(
        str(path.relative_to(ROOT))
        for path in [*library_modules(), *(ROOT / "stages").glob("*.py"), *(ROOT / "api").rglob("*.py")]
        if any(m == "mlflow" or m.startswith("mlflow.") for m in imported_modules(path))
    )
    assert importers == ["spamfilter/registry/tracking.py"]
