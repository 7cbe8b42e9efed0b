"""A served model: where it comes from, what it is, and the atomic swap to a new one. One holder per
channel (SMS, e-mail), each with its own source.

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ConfigDict

from spamfilter.config import Channel
from spamfilter.errors import ModelUnavailableError
from spamfilter.labels import LABELS
from spamfilter.modeling.pipeline import model_threshold, predict_labels
from spamfilter.modeling.scoring import compile_scorer
from spamfilter.registry import loading, versions
from spamfilter.registry.bundle import read_bundle_metadata
from spamfilter.registry.versions import CHANNEL_TAG, ModelDescription, parse_models_uri

log = logging.getLogger(__name__)


def is_registry_uri(uri: str) -> bool:
    return uri.startswith("models:/")


class ModelInfo(ModelDescription):
    """What /model reports: the served version's description, where it was loaded from, and the token
    that identifies the version at its source (polling reloads when it changes)."""

    model_config = ConfigDict(frozen=True)

    source: str
    token: str


# P(spam) of each input: SMS texts, or raw e-mail messages (bytes).
ChannelScorer = Callable[[Sequence[Any]], np.ndarray]


@dataclass(frozen=True)
class LoadedModel:
    info: ModelInfo
    model: Any
    score: ChannelScorer
    scorer_kind: str
    threshold: float
    loaded_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    def labels_of(self, probabilities: list[float]) -> list[str]:
        return predict_labels(probabilities, self.threshold)


def probe_source(uri: str) -> str:
    """The token of the version the source names now (cheap: metadata only, no model load)."""
    if is_registry_uri(uri):
        from spamfilter.registry import tracking  # imports mlflow

        return f"registry:{tracking.registered_version(uri).version}"
    meta = read_bundle_metadata(Path(uri))
    return f"bundle:{meta.version}:{meta.run_id}:{meta.exported_at}"


def channel_scorer(model: Any, channel: Channel) -> tuple[ChannelScorer, str]:
    """How a channel's model is scored, and the scorer's name: "lean" (the pipeline's own steps without
    scikit-learn's per-call validation) when it reproduces the model's probabilities bit for bit at load,
    else "pipeline" (`predict_proba`). SMS scores texts, e-mail raw messages (parsed inside the model)."""
    if channel == "email":
        from spamfilter.modeling import email  # the e-mail model's code: only where an e-mail model is served

        return email.compile_email_scorer(model)
    return compile_scorer(model)


def _wrong_channel(where: str, found: str, channel: Channel) -> ModelUnavailableError:
    return ModelUnavailableError(f"{where}: a model of the {found} channel, not of {channel}; check the model URI")


def load_from_source(uri: str, channel: Channel = "sms") -> LoadedModel:
    """Load the model `uri` names (a bundle directory or `models:/…`) for `channel`, with its metadata.

    A registry alias is resolved to a version first and that version is loaded, so the
    metadata and the model always describe the same version even if the alias moves meanwhile.
    A model of another channel is refused: an SMS model would score the raw bytes of an e-mail.
    """
    started = time.perf_counter()
    if is_registry_uri(uri):
        from spamfilter.registry import tracking  # imports mlflow: only when loading from the registry

        found = tracking.registered_version(uri)
        tagged = found.lineage.get(CHANNEL_TAG, "sms")
        if tagged != channel:
            raise _wrong_channel(f"{uri} (version {found.version})", tagged, channel)
        model = loading.load_pipeline(found.uri)
        _, alias, _ = parse_models_uri(uri)
        description = versions.describe(found, alias, model_threshold(model), channel)
        info = ModelInfo(**description.model_dump(), source=found.uri, token=f"registry:{found.version}")
    else:
        bundle = Path(uri)
        meta = read_bundle_metadata(bundle)
        if meta.channel != channel:
            raise _wrong_channel(f"{bundle}/metadata.json", meta.channel, channel)
        model = loading.load_pipeline(bundle)
        threshold = model_threshold(model)
        if abs(threshold - meta.threshold) > 1e-12:
            raise ModelUnavailableError(
                f"{bundle}/metadata.json: threshold {meta.threshold} differs from the model's built-in {threshold}"
            )
        info = ModelInfo(
            **meta.model_dump(exclude={"exported_at"}),
            source=str(bundle.resolve()),
            token=f"bundle:{meta.version}:{meta.run_id}:{meta.exported_at}",
        )
    if tuple(model.classes_) != LABELS:
        raise ModelUnavailableError(f"{uri}: model classes are {list(model.classes_)}, expected {list(LABELS)}")
    score, kind = channel_scorer(model, channel)
    log.info(
        "loaded the %s model %s version %s from %s in %.1f s (%s scorer)",
        channel,
        info.name,
        info.version,
        uri,
        time.perf_counter() - started,
        kind,
    )
    return LoadedModel(info=info, model=model, score=score, scorer_kind=kind, threshold=info.threshold)


@dataclass(frozen=True)
class ReloadOutcome:
    ok: bool
    swapped: bool
    version: str | None
    previous_version: str | None
    error: str | None = None


class ModelHolder:
    """A channel's current model and the history of its loads; thread-safe, swaps atomically."""

    def __init__(self, uri: str, channel: Channel = "sms") -> None:
        self.uri = uri
        self.channel: Channel = channel
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
                loaded = load_from_source(self.uri, self.channel)
            except Exception as exc:  # whatever broke, the current model keeps serving
                message = f"{type(exc).__name__}: {exc}"
                self.last_error = f"loading {self.uri} failed: {message}"
                self.last_error_at = datetime.now(UTC).isoformat()
                self.failed_reloads += 1
                self._failed_token = token
                log.error(
                    "%s model reload failed, still serving %s: %s",
                    self.channel,
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
                log.info(
                    "now serving %s version %s on %s (was %s)",
                    loaded.info.name,
                    loaded.info.version,
                    self.channel,
                    previous_version,
                )
            return ReloadOutcome(True, True, loaded.info.version, previous_version)
