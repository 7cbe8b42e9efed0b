"""Loading a fitted model pipeline from wherever it lives: the one loader the gate, the export, the
monitor, the pull-request report and the API use.

Sources: a `models:/<name>@<alias>` or `models:/<name>/<version>` registry URI, a serving bundle
(`spamfilter export`), an MLflow model directory, or a `.joblib` file (the `train` stage's output).
A joblib file loads without importing mlflow, which takes seconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from spamfilter import files
from spamfilter.config import Settings
from spamfilter.errors import ModelUnavailableError
from spamfilter.registry.bundle import MODEL_DIR


def mlflow_model_dir(source: Path) -> Path | None:
    """The MLflow model directory inside `source` (itself, or a bundle's `model/`), or None."""
    for candidate in (source, source / MODEL_DIR):
        if (candidate / "MLmodel").is_file():
            return candidate
    return None


def load_pipeline(source: str | Path, settings: Settings | None = None) -> Any:
    """The fitted scikit-learn pipeline `source` names; ModelUnavailableError (naming the source and
    why) when there is none or it cannot be loaded."""
    text = str(source)
    if text.startswith("models:/"):
        from spamfilter.registry import tracking  # imports mlflow: only for registry sources

        return tracking.load_registered_pipeline(text, settings or Settings())
    path = Path(source)
    if path.is_file():
        try:
            return files.load_joblib(path)
        except Exception as exc:  # a truncated or foreign file: whatever unpickling raised, the model is unusable
            raise ModelUnavailableError(f"{path}: cannot be loaded: {type(exc).__name__}: {exc}") from None
    model_dir = mlflow_model_dir(path)
    if model_dir is None:
        raise ModelUnavailableError(
            f"{path}: no model there (expected a model.joblib, an MLflow model directory or a serving bundle)"
        )
    from spamfilter.registry import tracking  # imports mlflow

    return tracking.load_model_dir(model_dir)
