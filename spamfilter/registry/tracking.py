"""MLflow tracking and model registry: the only module that imports mlflow.

Stages call these functions with plain values; everything MLflow-specific (tracking URI,
experiment, model flavour, signature, registration) stays here.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.metadata
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import mlflow
import mlflow.artifacts
import mlflow.pyfunc
import mlflow.sklearn
import pandas as pd
import requests
import sqlalchemy.exc
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient

import spamfilter
from spamfilter.config import Settings
from spamfilter.errors import ModelUnavailableError, RegistryError, TrackingError
from spamfilter.registry.audit import PromotionRecord, history_markdown, rollback_target
from spamfilter.registry.versions import (
    CHANNEL_TAG,
    LINEAGE_TAGS,
    MODEL_MD5_TAG,
    ModelVersion,
    parse_models_uri,
    registered_model_markdown,
    version_markdown,
)

log = logging.getLogger(__name__)

MODEL_ARTIFACT = "model"
SERVING_PACKAGES = ("scikit-learn", "nltk", "numpy", "scipy", "pandas")


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

    return [f"{package}=={importlib.metadata.version(package)}" for package in SERVING_PACKAGES]


def _model_kwargs(model: Any, input_example: Sequence[str], input_column: str) -> dict[str, Any]:
    """What makes a proper MLflow model of the pipeline, the same for logging and saving: a
    signature inferred from a one-column DataFrame of inputs (`text` for SMS, `message` for raw
    e-mails), an input example, pinned serving requirements and the `spamfilter` package as code,
    so it loads where the package is not installed."""
    example = pd.DataFrame({input_column: list(input_example)})
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
    input_column: str = "text",
) -> ModelVersion:
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
                **_model_kwargs(model, input_example, input_column),
            )
    except MlflowException as exc:
        raise TrackingError(f"logging to {settings.mlflow_tracking_uri!r} failed: {exc.message}") from None
    return ModelVersion(
        name=settings.registered_model,
        version=str(info.registered_model_version),
        run_id=run.info.run_id,
        source=info.model_uri,
        run_tags=dict(tags),
    )


def save_model(model: Any, path: Path, input_example: Sequence[str], input_column: str = "text") -> None:
    """Write the pipeline as an MLflow model directory (the same form as a logged model)."""
    mlflow.sklearn.save_model(model, str(path), **_model_kwargs(model, input_example, input_column))


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


def find_trained_version(settings: Settings, model_md5: str) -> ModelVersion:
    """The registered version whose training run logged the model with this md5 (the newest, if a
    retrain produced the same model again): how `evaluate` finds what `train` registered without a
    run id in a DVC output."""

    _use_experiment(settings)
    with _store_errors(settings, f"looking up the training run of model md5 {model_md5}"):
        client = _client(settings)
        experiment = client.get_experiment_by_name(settings.experiment_name)
        runs = (
            client.search_runs(
                [experiment.experiment_id],
                filter_string=f"tags.{MODEL_MD5_TAG} = '{model_md5}'",
                order_by=["attributes.start_time DESC"],
                max_results=20,
            )
            if experiment is not None
            else []
        )
        for run in runs:
            found = client.search_model_versions(
                f"name = '{settings.registered_model}' and run_id = '{run.info.run_id}'"
            )
            if found:
                return _with_run(client, _ref(max(found, key=lambda v: int(v.version))))
    raise TrackingError(
        f"no training run in {settings.mlflow_tracking_uri!r} (experiment {settings.experiment_name!r}) registered "
        f"a {settings.registered_model} version of the model with md5 {model_md5}; retrain with `dvc repro -f train` "
        "(or point MLFLOW_TRACKING_URI at the store it was logged to)"
    )


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


def load_model_dir(path: Path) -> Any:
    """The native sklearn pipeline of an MLflow model directory (`spamfilter.registry.loading` is the
    general loader); ModelUnavailableError when it cannot be loaded."""
    try:
        return mlflow.sklearn.load_model(str(path))
    except Exception as exc:  # any failure to read or unpickle means the same: this model cannot serve
        message = exc.message if isinstance(exc, MlflowException) else f"{type(exc).__name__}: {exc}"
        raise ModelUnavailableError(f"{path}: cannot be loaded: {message}") from None


def load_registered_pipeline(uri: str, settings: Settings, what: str = "") -> Any:
    """The native sklearn pipeline of a registered version (`models:/name@alias`, `models:/name/3`);
    ModelUnavailableError naming `what` (default: the URI) when it cannot be loaded."""
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    try:
        return mlflow.sklearn.load_model(uri)
    except Exception as exc:  # any failure to fetch or unpickle means the same: this model cannot serve
        message = exc.message if isinstance(exc, MlflowException) else f"{type(exc).__name__}: {exc}"
        raise ModelUnavailableError(f"{what or uri} cannot be loaded: {message}") from None


def registered_version(uri: str, settings: Settings | None = None) -> ModelVersion:
    """Resolve `models:/name@alias` or `models:/name/version` to the version it names now, with its
    training run's details."""
    settings = settings or Settings()
    name, alias, version = parse_models_uri(uri)
    client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    try:
        found = (
            client.get_model_version_by_alias(name, alias) if alias else client.get_model_version(name, str(version))
        )
        return _with_run(client, _ref(found))
    except MlflowException as exc:
        raise TrackingError(f"{uri} in {settings.mlflow_tracking_uri!r}: {exc.message}") from None


def _with_run(client: MlflowClient, version: ModelVersion) -> ModelVersion:
    """The version with its training run's held-out metrics, tags, params and start time."""

    if not version.run_id:
        return version
    run = client.get_run(version.run_id)
    return replace(
        version,
        metrics={
            key.removeprefix("test_"): value for key, value in run.data.metrics.items() if key.startswith("test_")
        },
        run_tags={key: value for key, value in run.data.tags.items() if not key.startswith("mlflow.")},
        params=dict(run.data.params),
        trained_at=_iso_from_ms(run.info.start_time),
    )


# --- Aliases, promotion audit, rollback and export (the gate's side of the registry) ---------------

CHALLENGER = "challenger"
CHAMPION = "champion"
# One registered-model tag per change of `champion`: `audit.000001` → a PromotionRecord as JSON.
AUDIT_TAG_PREFIX = "audit."
PROMOTION_LOCK_TIMEOUT_S = 120.0


def _client(settings: Settings) -> MlflowClient:
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    return MlflowClient(tracking_uri=settings.mlflow_tracking_uri)


@contextlib.contextmanager
def _store_errors(settings: Settings, doing: str) -> Iterator[None]:
    """Turn a failing or unreachable tracking store into one clear TrackingError."""

    try:
        yield
    except RegistryError:
        raise
    except MlflowException as exc:
        raise TrackingError(f"{doing}: MLflow store {settings.mlflow_tracking_uri!r}: {exc.message}") from None
    except (requests.RequestException, sqlalchemy.exc.SQLAlchemyError, OSError) as exc:
        raise TrackingError(
            f"{doing}: MLflow store {settings.mlflow_tracking_uri!r} is not reachable: {exc} "
            "(set MLFLOW_TRACKING_URI to a reachable store)"
        ) from None


def _is_missing(exc: MlflowException) -> bool:
    return exc.error_code in {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"}


def _ref(found: Any) -> ModelVersion:
    """A registry entity as a ModelVersion (without its run's details)."""
    return ModelVersion(
        name=found.name,
        version=str(found.version),
        run_id=found.run_id or "",
        aliases=tuple(getattr(found, "aliases", ()) or ()),
        source=str(getattr(found, "source", "") or ""),
        tags=dict(found.tags or {}),
        trained_at=_iso_from_ms(found.creation_timestamp) if getattr(found, "creation_timestamp", None) else "",
    )


def _iso_from_ms(milliseconds: int) -> str:

    return datetime.fromtimestamp(milliseconds / 1000, UTC).isoformat()


def _alias_version(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    try:
        return _ref(client.get_model_version_by_alias(name, alias))
    except MlflowException as exc:
        if _is_missing(exc):
            return None
        raise


def find_alias(settings: Settings, alias: str) -> ModelVersion | None:
    """The version an alias points at, or None when the alias (or the model) does not exist."""
    with _store_errors(settings, f"looking up {settings.registered_model}@{alias}"):
        return _alias_version(_client(settings), settings.registered_model, alias)


def get_version(settings: Settings, ref: str) -> ModelVersion:
    """A version by number (`3`, `v3`) or by alias (`champion`); a clear error when there is none."""
    name = settings.registered_model
    number = ref.removeprefix("v")
    with _store_errors(settings, f"looking up {name} {ref}"):
        client = _client(settings)
        if number.isdigit():
            try:
                return _ref(client.get_model_version(name, number))
            except MlflowException as exc:
                if _is_missing(exc):
                    raise RegistryError(f"{name} has no version {number} in {settings.mlflow_tracking_uri!r}") from None
                raise
        found = _alias_version(client, name, ref)
    if found is None:
        raise RegistryError(f"no version of {name} has the alias {ref!r} in {settings.mlflow_tracking_uri!r}")
    return found


def set_alias(settings: Settings, alias: str, version: str) -> None:
    with _store_errors(settings, f"setting {settings.registered_model}@{alias}"):
        _client(settings).set_registered_model_alias(settings.registered_model, alias, version)


def delete_alias(settings: Settings, alias: str) -> None:
    with _store_errors(settings, f"deleting {settings.registered_model}@{alias}"):
        client = _client(settings)
        if _alias_version(client, settings.registered_model, alias) is not None:
            client.delete_registered_model_alias(settings.registered_model, alias)


def set_version_tags(settings: Settings, version: str, tags: Mapping[str, str]) -> None:
    with _store_errors(settings, f"tagging {settings.registered_model} version {version}"):
        client = _client(settings)
        for key, value in tags.items():
            client.set_model_version_tag(settings.registered_model, version, key, str(value))


def mark_challenger(settings: Settings, version: str, run_id: str, tags: Mapping[str, str]) -> None:
    """Tag a freshly evaluated version with its lineage (the run's data and code tags plus `tags`)
    and point the `challenger` alias at it. Never touches `champion`."""
    with _store_errors(settings, f"marking {settings.registered_model} version {version} as challenger"):
        run_tags = _client(settings).get_run(run_id).data.tags
    lineage = {key: run_tags[key] for key in LINEAGE_TAGS if key in run_tags}
    set_version_tags(settings, version, {**lineage, **tags})
    set_alias(settings, CHALLENGER, version)
    describe_version(settings, version)


def describe_version(settings: Settings, version: str) -> None:
    """Write a version's Markdown description for the MLflow UI from what the registry holds about it:
    channel, held-out metrics, the gate's verdict (the `gate.*` tags) and lineage."""
    found = registered_version(f"models:/{settings.registered_model}/{version}", settings)
    verdict = {key.removeprefix("gate."): value for key, value in found.tags.items() if key.startswith("gate.")}
    text = version_markdown(
        found.version, found.lineage.get(CHANNEL_TAG, "sms"), found.metrics, found.lineage, verdict or None
    )
    with _store_errors(settings, f"describing {settings.registered_model} version {version}"):
        _client(settings).update_model_version(settings.registered_model, version, description=text)


def load_version(settings: Settings, ref: ModelVersion) -> Any:
    """The native sklearn pipeline of a version; ModelUnavailableError when its artifact cannot be loaded."""
    return load_registered_pipeline(ref.uri, settings, f"{ref.name} version {ref.version}")


def download_version(settings: Settings, ref: ModelVersion, destination: Path) -> Path:
    """Copy a version's MLflow model directory (MLmodel, model.pkl, code/, …) into `destination`."""

    destination.mkdir(parents=True, exist_ok=True)
    with _store_errors(settings, f"downloading {ref.uri}"):
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=ref.uri, dst_path=str(destination)))
    if not (local / "MLmodel").is_file():
        raise ModelUnavailableError(f"{ref.uri}: downloaded artifacts have no MLmodel file")
    return local


def _lock_file(tracking_uri: str) -> Path | None:
    """Where the promotion lock lives for a local store; None for a tracking server."""

    if tracking_uri.startswith("sqlite:///"):
        database = Path(unquote(tracking_uri.removeprefix("sqlite:///").split("?", 1)[0]))
        return database.with_name(database.name + ".promote.lock")
    if tracking_uri.startswith("file:"):
        return Path(unquote(urlparse(tracking_uri).path)) / ".promote.lock"
    if "://" not in tracking_uri:
        return Path(tracking_uri) / ".promote.lock"
    return None


@contextlib.contextmanager
def _promotion_lock(settings: Settings) -> Iterator[None]:
    """Serialise alias changes on one store: an exclusive file lock beside a local store. A tracking
    server has no lock API; there the compare-and-set in `promote` still refuses a stale verdict,
    and CI must run promotions one at a time (a GitHub Actions `concurrency` group)."""

    path = _lock_file(settings.mlflow_tracking_uri)
    if path is None:
        log.warning("no cross-process lock for %s; relying on compare-and-set", settings.mlflow_tracking_uri)
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        deadline = time.monotonic() + PROMOTION_LOCK_TIMEOUT_S
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RegistryError(
                        f"{path}: another promotion has held the lock for {PROMOTION_LOCK_TIMEOUT_S:.0f}s"
                    ) from None
                time.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _audit_records(client: MlflowClient, name: str) -> list[PromotionRecord]:
    try:
        tags = client.get_registered_model(name).tags
    except MlflowException as exc:
        if _is_missing(exc):
            return []
        raise
    records = [
        PromotionRecord.model_validate_json(value) for key, value in tags.items() if key.startswith(AUDIT_TAG_PREFIX)
    ]
    return sorted(records, key=lambda record: record.seq)


def promotion_history(settings: Settings) -> list[PromotionRecord]:
    """Every change of `champion` recorded in the registry (PromotionRecord), oldest first."""
    with _store_errors(settings, f"reading the promotion history of {settings.registered_model}"):
        return _audit_records(_client(settings), settings.registered_model)


def _switch_champion(
    client: MlflowClient, name: str, version: str, previous: str | None, record_fields: Mapping[str, Any]
) -> PromotionRecord:
    """Move `champion` to `version` and append the audit record; put the alias back if recording fails."""

    records = _audit_records(client, name)
    record = PromotionRecord(
        seq=(records[-1].seq + 1) if records else 1,
        version=version,
        previous=previous,
        at=datetime.now(UTC).isoformat(timespec="seconds"),
        **record_fields,
    )
    client.set_registered_model_alias(name, CHAMPION, version)
    try:
        client.set_registered_model_tag(name, f"{AUDIT_TAG_PREFIX}{record.seq:06d}", record.model_dump_json())
    except Exception:
        if previous is None:
            client.delete_registered_model_alias(name, CHAMPION)
        else:
            client.set_registered_model_alias(name, CHAMPION, previous)
        raise
    now = _alias_version(client, name, CHAMPION)
    if now is None or now.version != version:
        raise RegistryError(f"{name}@{CHAMPION} is v{now.version if now else None} after setting it to v{version}")
    channel = now.tags.get(CHANNEL_TAG, "sms")
    history = history_markdown([*records, record])
    client.update_registered_model(name, description=registered_model_markdown(name, channel, version, history))
    return record


def promote(
    settings: Settings, version: str, expected_champion: str | None, actor: str, reason: str, gate: Mapping[str, Any]
) -> PromotionRecord:
    """Compare-and-set: move `champion` to `version` only if it still points at `expected_champion`
    (the version the gate judged against; None for no champion), under the store's promotion lock.
    Records who, when, why and the gate verdict in the registry. Returns the PromotionRecord."""
    name = settings.registered_model
    with _store_errors(settings, f"promoting {name} version {version}"), _promotion_lock(settings):
        client = _client(settings)
        client.get_model_version(name, version)
        current = _alias_version(client, name, CHAMPION)
        current_version = current.version if current else None
        if current_version != expected_champion:
            judged = f"v{expected_champion}" if expected_champion else "no champion"
            raise RegistryError(
                f"{name}@{CHAMPION} is now {f'v{current_version}' if current_version else 'unset'}, but the gate "
                f"judged v{version} against {judged}; run `spamfilter gate` again. Champion unchanged."
            )
        if current_version == version:
            raise RegistryError(f"{name} version {version} is already the champion")
        return _switch_champion(
            client,
            name,
            version,
            current_version,
            {"action": "promote", "actor": actor, "reason": reason, "gate": dict(gate)},
        )


def rollback(settings: Settings, actor: str, reason: str, to_version: str | None = None) -> PromotionRecord:
    """Move `champion` back to the previous champion by the audit trail (or to `to_version`),
    recording the rollback. Returns the PromotionRecord."""
    name = settings.registered_model
    with _store_errors(settings, f"rolling back {name}@{CHAMPION}"), _promotion_lock(settings):
        client = _client(settings)
        current = _alias_version(client, name, CHAMPION)
        current_version = current.version if current else None
        target = (
            to_version.removeprefix("v")
            if to_version
            else rollback_target(_audit_records(client, name), current_version)
        )
        if target is None:
            raise RegistryError(f"{name}: no earlier champion to roll back to (see `spamfilter history`)")
        if target == current_version:
            raise RegistryError(f"{name} version {target} is already the champion")
        try:
            client.get_model_version(name, target)
        except MlflowException as exc:
            if _is_missing(exc):
                raise RegistryError(f"{name} has no version {target} to roll back to") from None
            raise
        return _switch_champion(
            client, name, target, current_version, {"action": "rollback", "actor": actor, "reason": reason}
        )


# --- Batch scoring on Spark ------------------------------------------------------------------------


def load_spark_udf(spark: Any, settings: Settings, ref: ModelVersion, workdir: Path) -> Any:
    """A Spark UDF (`mlflow.pyfunc.spark_udf`) that scores with a registered version's own MLflow model and
    returns each row's class probabilities, an array in the model's class order (`classes_`).

    The version's MLflow model is copied into `workdir` and its pyfunc flavour pointed at `predict_proba`
    (logged models predict labels; the same pickled pipeline, unchanged, gives the probabilities). The UDF
    runs in the executors' own Python (`env_manager="local"`): no conda or virtualenv is created, nothing is
    fetched. ModelUnavailableError when the model cannot be copied or turned into a UDF."""
    from pyspark.sql.types import ArrayType, DoubleType  # pyspark is an optional extra: only when asked for

    local = download_version(settings, ref, workdir)
    try:
        model = mlflow.models.Model.load(str(local / "MLmodel"))
        pyfunc = model.flavors.get("python_function")
        if pyfunc is None:
            raise ModelUnavailableError(f"{ref.uri}: its MLflow model has no python_function flavour")
        pyfunc["predict_fn"] = "predict_proba"
        model.save(str(local / "MLmodel"))
        # The executors' own Python is the point here (nothing is installed or fetched): mlflow's warning that
        # env_manager="local" does not recreate the training environment is expected, not news.
        pyfunc_log = logging.getLogger("mlflow.pyfunc")
        expected = _DropRecords("env_manager")
        pyfunc_log.addFilter(expected)
        try:
            return mlflow.pyfunc.spark_udf(spark, str(local), result_type=ArrayType(DoubleType()), env_manager="local")
        finally:
            pyfunc_log.removeFilter(expected)
    except MlflowException as exc:
        raise ModelUnavailableError(f"{ref.uri}: cannot be scored on Spark: {exc.message}") from None


class _DropRecords(logging.Filter):
    """Drops the log records whose message contains `text`."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()
