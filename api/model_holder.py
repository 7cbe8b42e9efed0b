"""The served model: where it comes from, what it is, and the atomic swap to a new one.

A `LoadedModel` is immutable. Requests take the holder's current reference once and score with
it to the end, so a swap (one reference assignment) never changes the model under a request in
flight; the old model is freed when its last request finishes. A load that fails leaves the
current model in place and is kept as `last_error` for /ready and the logs.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from spamfilter.modeling.pipeline import model_threshold, predict_labels
from spamfilter.modeling.scoring import Scorer, compile_scorer
from spamfilter.registry.bundle import DataFingerprint, model_path, read_bundle_metadata

log = logging.getLogger(__name__)

FINGERPRINT_TAGS = {
    "raw_md5": "data_raw_md5",
    "dataset_sha256": "data_sha256",
    "rows": "data_rows",
    "train_rows": "data_train_rows",
    "test_rows": "data_test_rows",
}


def is_registry_uri(uri: str) -> bool:
    return uri.startswith("models:/")


@dataclass(frozen=True)
class ModelInfo:
    """What /model reports: which model answers, and how it scored when it was evaluated."""

    name: str
    version: str
    alias: str | None
    run_id: str
    source: str
    metrics: dict[str, float]
    threshold: float
    trained_at: str
    data_fingerprint: dict[str, Any]
    # Identifies the version at its source: polling reloads when it changes.
    token: str


@dataclass(frozen=True)
class LoadedModel:
    info: ModelInfo
    model: Any
    score: Scorer
    scorer_kind: str
    threshold: float
    loaded_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    def labels_of(self, probabilities: list[float]) -> list[str]:
        return predict_labels(probabilities, self.threshold)


def _fingerprint_from_tags(tags: dict[str, str]) -> dict[str, Any]:
    fingerprint: dict[str, Any] = {}
    for key, tag in FINGERPRINT_TAGS.items():
        value = tags.get(tag, "")
        fingerprint[key] = int(value) if key.endswith("rows") and value.isdigit() else value
    return fingerprint


def probe_source(uri: str) -> str:
    """The token of the version the source names now (cheap: metadata only, no model load)."""
    if is_registry_uri(uri):
        from spamfilter.registry import tracking

        return f"registry:{tracking.registered_version(uri).version}"
    meta = read_bundle_metadata(Path(uri))
    return f"bundle:{meta.version}:{meta.run_id}:{meta.exported_at}"


def load_from_source(uri: str) -> LoadedModel:
    """Load the model `uri` names (a bundle directory or `models:/…`), with its metadata.

    A registry alias is resolved to a version first and that version is loaded, so the
    metadata and the model always describe the same version even if the alias moves meanwhile.
    """
    from spamfilter.registry import tracking

    started = time.perf_counter()
    if is_registry_uri(uri):
        found = tracking.registered_version(uri)
        model = tracking.load_sklearn_model(found.model_uri)
        _, alias, _ = tracking.parse_models_uri(uri)
        threshold = model_threshold(model)
        info = ModelInfo(
            name=found.name,
            version=found.version,
            alias=alias,
            run_id=found.run_id,
            source=found.model_uri,
            metrics=found.metrics,
            threshold=threshold,
            trained_at=found.trained_at,
            data_fingerprint=_fingerprint_from_tags(found.tags),
            token=f"registry:{found.version}",
        )
    else:
        bundle = Path(uri)
        meta = read_bundle_metadata(bundle)
        model = tracking.load_sklearn_model(str(model_path(bundle)))
        threshold = model_threshold(model)
        if abs(threshold - meta.threshold) > 1e-12:
            raise ValueError(
                f"{bundle}/metadata.json: threshold {meta.threshold} differs from the model's built-in {threshold}"
            )
        info = ModelInfo(
            name=meta.name,
            version=meta.version,
            alias=meta.alias,
            run_id=meta.run_id,
            source=str(bundle.resolve()),
            metrics=dict(meta.metrics),
            threshold=threshold,
            trained_at=meta.trained_at,
            data_fingerprint=DataFingerprint.model_validate(meta.data_fingerprint).model_dump(),
            token=f"bundle:{meta.version}:{meta.run_id}:{meta.exported_at}",
        )
    if list(model.classes_) != ["ham", "spam"]:
        raise ValueError(f"{uri}: model classes are {list(model.classes_)}, expected ['ham', 'spam']")
    score, kind = compile_scorer(model)
    log.info(
        "loaded %s version %s from %s in %.1f s (%s scorer)",
        info.name,
        info.version,
        uri,
        time.perf_counter() - started,
        kind,
    )
    return LoadedModel(info=info, model=model, score=score, scorer_kind=kind, threshold=threshold)


@dataclass(frozen=True)
class ReloadOutcome:
    ok: bool
    swapped: bool
    version: str | None
    previous_version: str | None
    error: str | None = None


class ModelHolder:
    """The current model and the history of loads; thread-safe, swaps atomically."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.current: LoadedModel | None = None
        self.last_error: str | None = None
        self.last_error_at: str | None = None
        self.last_reload_at: str | None = None
        self.reloads = 0
        self.failed_reloads = 0
        self._load_lock = threading.Lock()
        self._failed_token: str | None = None

    def reload(self, force: bool = True) -> ReloadOutcome:
        """Load the source's model and swap it in; on failure keep serving the current one.

        Blocking (run it in a thread). With `force=False` nothing is loaded when the source
        still names the version being served."""
        with self._load_lock:
            previous = self.current
            previous_version = previous.info.version if previous else None
            token = None
            try:
                if not force and previous is not None:
                    token = probe_source(self.uri)
                    # Polling: nothing new, or the same broken version that failed last time.
                    if token in (previous.info.token, self._failed_token):
                        return ReloadOutcome(token != self._failed_token, False, previous_version, previous_version)
                loaded = load_from_source(self.uri)
            except Exception as exc:  # whatever broke, the current model keeps serving
                message = f"{type(exc).__name__}: {exc}"
                self.last_error = f"loading {self.uri} failed: {message}"
                self.last_error_at = datetime.now(UTC).isoformat()
                self.failed_reloads += 1
                self._failed_token = token
                log.error(
                    "model reload failed, still serving %s: %s",
                    f"version {previous_version}" if previous else "no model",
                    self.last_error,
                )
                return ReloadOutcome(False, False, previous_version, previous_version, self.last_error)
            self.current = loaded  # the swap: one reference assignment
            # The model's many long-lived objects would otherwise be re-scanned by every full
            # garbage collection, a pause that lands in some request's latency: freeze them.
            gc.collect()
            gc.freeze()
            self.last_error = None
            self.last_error_at = None
            self._failed_token = None
            self.last_reload_at = loaded.loaded_at
            self.reloads += 1
            if previous_version != loaded.info.version:
                log.info("now serving %s version %s (was %s)", loaded.info.name, loaded.info.version, previous_version)
            return ReloadOutcome(True, True, loaded.info.version, previous_version)
