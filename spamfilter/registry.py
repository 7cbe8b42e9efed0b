"""MLflow tracking and model registry: the only module that imports mlflow.

Stages call these functions with plain values; everything MLflow-specific (tracking URI,
experiment, model flavour, signature, registration) stays here.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import mlflow.sklearn
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient

import spamfilter
from spamfilter.config import Settings

log = logging.getLogger(__name__)

MODEL_ARTIFACT = "model"
SERVING_PACKAGES = ("scikit-learn", "nltk", "numpy", "scipy", "pandas")


class TrackingError(RuntimeError):
    """The tracking store cannot be used; the message names the store and what to do."""


@dataclass(frozen=True)
class TrainingRun:
    run_id: str
    experiment_id: str
    model_uri: str
    registered_model: str
    model_version: str
    tracking_uri: str

    def as_dict(self) -> dict[str, str]:
        return {
            "run_id": self.run_id,
            "experiment_id": self.experiment_id,
            "model_uri": self.model_uri,
            "registered_model": self.registered_model,
            "model_version": self.model_version,
            "tracking_uri": self.tracking_uri,
        }


def _is_local_store(uri: str) -> bool:
    return uri.startswith(("sqlite:", "file:")) or "://" not in uri


def _use_experiment(settings: Settings) -> str:
    """Point mlflow at the configured store and experiment, creating the experiment if needed."""
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    try:
        experiment = mlflow.get_experiment_by_name(settings.experiment_name)
        if experiment is not None:
            experiment_id = experiment.experiment_id
        else:
            location = None
            if _is_local_store(settings.mlflow_tracking_uri):
                location = (Path(settings.mlflow_artifact_root) / settings.experiment_name).resolve().as_uri()
            experiment_id = mlflow.create_experiment(settings.experiment_name, artifact_location=location)
    except MlflowException as exc:
        raise TrackingError(
            f"MLflow tracking store {settings.mlflow_tracking_uri!r} is not usable: {exc.message} "
            "(set MLFLOW_TRACKING_URI to a reachable store)"
        ) from None
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def _stringify(params: Mapping[str, Any]) -> dict[str, str]:
    return {key: "null" if value is None else str(value) for key, value in params.items()}


def _pip_requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{package}=={version(package)}" for package in SERVING_PACKAGES]


def _model_kwargs(model: Any, input_example: Sequence[str]) -> dict[str, Any]:
    """What makes a proper MLflow model of the pipeline, the same for logging and saving: a
    signature inferred from a one-column DataFrame of texts, an input example, pinned serving
    requirements and the `spamfilter` package as code, so it loads where the package is not installed."""
    example = pd.DataFrame({"text": list(input_example)})
    return {
        "signature": infer_signature(example, model.predict(example)),
        "input_example": example,
        "pip_requirements": _pip_requirements(),
        "code_paths": [str(Path(spamfilter.__file__).parent)],
        "serialization_format": mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
    }


def log_training_run(
    settings: Settings,
    model: Any,
    params: Mapping[str, Any],
    tags: Mapping[str, str],
    input_example: Sequence[str],
    run_name: str | None = None,
) -> TrainingRun:
    """Start a run, log params and tags, log the model (sklearn flavour, so also pyfunc) and
    register it as a new version of `settings.registered_model`."""
    experiment_id = _use_experiment(settings)
    try:
        with mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as run:
            mlflow.log_params(_stringify(params))
            mlflow.set_tags(dict(tags))
            info = mlflow.sklearn.log_model(
                model,
                name=MODEL_ARTIFACT,
                registered_model_name=settings.registered_model,
                **_model_kwargs(model, input_example),
            )
    except MlflowException as exc:
        raise TrackingError(f"logging to {settings.mlflow_tracking_uri!r} failed: {exc.message}") from None
    return TrainingRun(
        run_id=run.info.run_id,
        experiment_id=experiment_id,
        model_uri=info.model_uri,
        registered_model=settings.registered_model,
        model_version=str(info.registered_model_version),
        tracking_uri=settings.mlflow_tracking_uri,
    )


def save_model(model: Any, path: Path, input_example: Sequence[str]) -> None:
    """Write the pipeline as an MLflow model directory (the same form as a logged model)."""
    mlflow.sklearn.save_model(model, str(path), **_model_kwargs(model, input_example))


@contextlib.contextmanager
def _resumed_run(settings: Settings, run_id: str) -> Iterator[None]:
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    try:
        MlflowClient().get_run(run_id)
    except MlflowException:
        raise TrackingError(
            f"training run {run_id} is not in the tracking store {settings.mlflow_tracking_uri!r}; "
            "retrain with `dvc repro -f train` (or point MLFLOW_TRACKING_URI at the store it was logged to)"
        ) from None
    with mlflow.start_run(run_id=run_id):
        yield


def log_evaluation(
    settings: Settings,
    run_id: str,
    metrics: Mapping[str, float],
    artifacts: Sequence[Path],
    tags: Mapping[str, str] | None = None,
) -> None:
    """Add held-out metrics, plot images and reports to the training run."""
    with _resumed_run(settings, run_id):
        mlflow.log_metrics({f"test_{key}": float(value) for key, value in metrics.items()})
        for path in artifacts:
            mlflow.log_artifact(str(path), artifact_path="evaluation")
        if tags:
            mlflow.set_tags(dict(tags))


def load_model(uri: str, settings: Settings | None = None) -> Any:
    """Load a logged or registered model as pyfunc (`models:/name@alias`, `runs:/…`, a path)."""
    if settings is not None:
        mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    return mlflow.pyfunc.load_model(uri)


def load_sklearn_model(uri: str, settings: Settings | None = None) -> Any:
    """Load the native scikit-learn pipeline of a logged or registered model."""
    if settings is not None:
        mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    return mlflow.sklearn.load_model(uri)


@dataclass(frozen=True)
class RegisteredVersion:
    """One registered model version as the serving side needs it: what it is and how it scored."""

    name: str
    version: str
    aliases: tuple[str, ...]
    run_id: str
    model_uri: str  # `models:/<name>/<version>`: stays on this version when the alias moves
    metrics: dict[str, float]  # the run's held-out `test_*` metrics, without the prefix
    trained_at: str  # ISO-8601 start of the training run
    tags: dict[str, str]
    params: dict[str, str]


def parse_models_uri(uri: str) -> tuple[str, str | None, str | None]:
    """`models:/name@alias` → (name, alias, None); `models:/name/3` → (name, None, "3")."""
    if not uri.startswith("models:/"):
        raise ValueError(f"{uri!r} is not a registry URI (expected models:/<name>@<alias> or models:/<name>/<version>)")
    rest = uri.removeprefix("models:/").strip("/")
    if "@" in rest:
        name, alias = rest.split("@", 1)
        if name and alias and "/" not in name:
            return name, alias, None
    elif rest.count("/") == 1:
        name, version = rest.split("/")
        if name and version.isdigit():
            return name, None, version
    raise ValueError(f"{uri!r} is not a registry URI (expected models:/<name>@<alias> or models:/<name>/<version>)")


def registered_version(uri: str, settings: Settings | None = None) -> RegisteredVersion:
    """Resolve `models:/name@alias` or `models:/name/version` to the version it names now."""
    from datetime import UTC, datetime

    settings = settings or Settings()
    name, alias, version = parse_models_uri(uri)
    client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    try:
        found = client.get_model_version_by_alias(name, alias) if alias else client.get_model_version(name, version)
        run = client.get_run(found.run_id) if found.run_id else None
    except MlflowException as exc:
        raise TrackingError(f"{uri} in {settings.mlflow_tracking_uri!r}: {exc.message}") from None
    metrics: dict[str, float] = {}
    tags: dict[str, str] = {}
    params: dict[str, str] = {}
    trained_at = datetime.fromtimestamp(found.creation_timestamp / 1000, UTC).isoformat()
    if run is not None:
        metrics = {
            key.removeprefix("test_"): value for key, value in run.data.metrics.items() if key.startswith("test_")
        }
        tags = {key: value for key, value in run.data.tags.items() if not key.startswith("mlflow.")}
        params = dict(run.data.params)
        trained_at = datetime.fromtimestamp(run.info.start_time / 1000, UTC).isoformat()
    return RegisteredVersion(
        name=name,
        version=str(found.version),
        aliases=tuple(getattr(found, "aliases", ()) or ()),
        run_id=found.run_id or "",
        model_uri=f"models:/{name}/{found.version}",
        metrics=metrics,
        trained_at=trained_at,
        tags=tags,
        params=params,
    )
