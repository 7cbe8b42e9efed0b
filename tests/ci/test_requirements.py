"""One source for dependency pins: the serving set is requirements-serve.txt, the full set includes it,
and pyproject.toml reads the same files, so the image and the pipeline cannot drift apart."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]


def requirement_lines(path: Path) -> list[str]:
    lines = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            lines.append(line)
    return lines


def pins(path: Path, seen: frozenset[Path] = frozenset()) -> dict[str, str]:
    """name → specifier of every requirement a file asks for, following `-r` includes."""
    found: dict[str, str] = {}
    for line in requirement_lines(path):
        if line.startswith("-r "):
            included = path.parent / line.removeprefix("-r ").strip()
            assert included not in seen, f"{path}: circular -r include"
            for name, spec in pins(included, seen | {path}).items():
                assert found.get(name, spec) == spec, f"{name} pinned twice differently ({path})"
                found[name] = spec
            continue
        requirement = Requirement(line)
        name = requirement.name.lower()
        assert name not in found, f"{path}: {name} pinned twice"
        found[name] = str(requirement.specifier)
    return found


def test_the_full_set_is_serving_plus_training_with_no_repeated_pin() -> None:
    serve, train, full = (
        pins(ROOT / f) for f in ("requirements-serve.txt", "requirements-train.txt", "requirements.txt")
    )
    assert not set(serve) & set(train), "a package is pinned in both requirements-serve.txt and requirements-train.txt"
    assert full == {**serve, **train}


def test_mlflow_and_the_skinny_serving_build_are_the_same_version() -> None:
    serve, train = pins(ROOT / "requirements-serve.txt"), pins(ROOT / "requirements-train.txt")
    assert serve["mlflow-skinny"] == train["mlflow"]


def test_pyproject_reads_the_same_files() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    dynamic = project["tool"]["setuptools"]["dynamic"]
    assert dynamic["dependencies"]["file"] == ["requirements-serve.txt"]
    assert dynamic["optional-dependencies"]["train"]["file"] == ["requirements-train.txt"]
    # setuptools reads these files line by line: no pip options (-r, -c, -e) may appear in them.
    for name in ("requirements-serve.txt", "requirements-train.txt"):
        assert not [line for line in requirement_lines(ROOT / name) if line.startswith("-")], name


def test_the_image_installs_the_serving_set() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"pip install -r requirements-serve\.txt", dockerfile)
