"""Shared fixtures: a generated fixture corpus, the real shared corpus, and an isolated copy of
the project in which DVC and MLflow run for real."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_CORPUS = REPO_ROOT.parent / "shared" / "data" / "sms_spam_collection.tsv"
VENV_BIN = Path(sys.executable).parent

_SPAM_TEMPLATES = (
    "WINNER!! You have won a £{n}00 prize. Call 0906{d} now to claim",
    "FREE entry to win {item}! Text WIN to 8{n}121 now. T&Cs apply",
    "URGENT! Your mobile has been awarded a £{n}000 bonus. Call 0905{d} from a landline",
    "Congratulations you won a free {item}. Reply YES to 8{n}233 to claim. Std txt rate",
    "You have been selected for a {item} offer. Visit www.win{n}.com or call 0800{d}",
)
_HAM_TEMPLATES = (
    "Are we still meeting for {meal} at {n}?",
    "I'll be home late tonight, don't wait up for {meal}",
    "Can you pick up some {item} on your way back?",
    "Sorry I missed your call, I was at {place}. Talk later?",
    "See you at {place} around {n}, bring the {item}",
    "Ok lor, going to {place} now. Want {meal}?",
)
_WORDS = {
    "item": ("ipod", "camera", "holiday", "ringtone", "milk", "bread", "charger", "book", "umbrella"),
    "meal": ("lunch", "dinner", "breakfast", "coffee", "tea"),
    "place": ("the gym", "work", "the library", "mum's", "the station", "class"),
}


def make_messages(n_ham: int = 160, n_spam: int = 40, seed: int = 7) -> list[tuple[str, str]]:
    """A deterministic, distinct set of (label, text) pairs that a model can learn."""
    rng = random.Random(seed)
    out: list[tuple[str, str]] = []
    for label, templates, count in (("ham", _HAM_TEMPLATES, n_ham), ("spam", _SPAM_TEMPLATES, n_spam)):
        seen: set[str] = set()
        while len(seen) < count:
            text = rng.choice(templates).format(
                n=rng.randint(1, 9),
                d=rng.randint(100000, 999999),
                **{key: rng.choice(values) for key, values in _WORDS.items()},
            )
            text = f"{text} {rng.randint(0, 10_000)}" if text in seen else text
            if text not in seen:
                seen.add(text)
                out.append((label, text))
    rng.shuffle(out)
    return out


def write_tsv(path: Path, rows: list[tuple[str, str]], header: bool = True) -> Path:
    lines = (["label\ttext"] if header else []) + [f"{label}\t{text}" for label, text in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def fixture_corpus(tmp_path: Path) -> Path:
    """A small generated corpus in the UCI form, with a header."""
    return write_tsv(tmp_path / "fixture_corpus.tsv", make_messages())


@pytest.fixture(scope="session")
def shared_corpus() -> Path:
    """The real SMS Spam Collection beside the checkout; CI must have it, elsewhere it may be absent."""
    if not SHARED_CORPUS.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"{SHARED_CORPUS} is missing: CI runs the data and model tests on the real corpus")
        pytest.skip(f"{SHARED_CORPUS} not present")
    return SHARED_CORPUS


def tracked_files(root: Path) -> list[str]:
    """Files git would check out, plus new files not yet committed (but not ignored ones)."""
    listing = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [name for name in listing.split("\0") if name and (root / name).is_file()]


@dataclass
class Project:
    """An isolated copy of the repository: its own git, DVC cache, DVC remote and MLflow store."""

    root: Path
    env: dict[str, str]

    def run(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            list(args), cwd=self.root, env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(args)} exited {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
            )
        return result

    def dvc(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run(str(VENV_BIN / "dvc"), *args, check=check)

    def python(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run(sys.executable, *args, check=check)

    def spamfilter(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.python("-m", "spamfilter.cli", *args, check=check)


def make_project(destination: Path, extra_env: dict[str, str] | None = None) -> Project:
    """Copy the repo's files (not data, outputs or stores) into `destination` and make it a git repo."""
    for name in tracked_files(REPO_ROOT):
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / name, target)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("MLFLOW_", "SPAM_", "DVC_"))}
    env.update(
        {
            "PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
            "DVC_NO_ANALYTICS": "1",
            "MLFLOW_TRACKING_URI": f"sqlite:///{destination / 'mlflow.db'}",
            "SPAM_MLFLOW_ARTIFACT_ROOT": str(destination / "mlartifacts"),
            "GIT_AUTHOR_NAME": "test",
            "GIT_AUTHOR_EMAIL": "test@example.com",
            "GIT_COMMITTER_NAME": "test",
            "GIT_COMMITTER_EMAIL": "test@example.com",
            "PYTHONPATH": str(destination),
        }
    )
    env.update(extra_env or {})
    project = Project(destination, env)
    project.run("git", "init", "-q")
    project.run("git", "add", "-A")
    project.run("git", "commit", "-q", "-m", "fixture")
    return project


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    yield make_project(tmp_path / "repo")
