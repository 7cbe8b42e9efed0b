"""Model-version records and their lineage: one description of "which model is this", shared by the
train stage, the registry, the release flow, the serving bundle and the API.

* `ModelVersion`: a registered version as the registry knows it (name, number, run, aliases, tags,
  and the run's held-out metrics and params when they were fetched).
* `ModelDescription`: what a served model says about itself (`/model`, a bundle's `metadata.json`):
  built from a `ModelVersion` by `describe`, the one place that maps registry tags to it.
* The lineage tag names: the train stage writes them on the run, `evaluate` copies them onto the
  version, `describe` reads them back as a `DataFingerprint`.

Pure: no mlflow, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from spamfilter.config import Channel
from spamfilter.errors import ConfigError
from spamfilter.modeling.metrics import METRIC_KEYS

# Run tags the train stage writes (what the model was trained on and with) and `evaluate` copies
# onto the registered version, so the registry shows them per version.
GIT_COMMIT_TAG = "git_commit"
MODEL_TYPE_TAG = "model_type"
MODEL_MD5_TAG = "model_md5"  # md5 of the pickled pipeline, as DVC records it: how `evaluate` finds its run
CHANNEL_TAG = "channel"
# DataFingerprint field → run/version tag.
FINGERPRINT_TAGS: Mapping[str, str] = {
    "raw_md5": "data_raw_md5",
    "dataset_sha256": "data_sha256",
    "rows": "data_rows",
    "train_rows": "data_train_rows",
    "test_rows": "data_test_rows",
}
LINEAGE_TAGS: tuple[str, ...] = (
    GIT_COMMIT_TAG,
    MODEL_TYPE_TAG,
    MODEL_MD5_TAG,
    CHANNEL_TAG,
    *FINGERPRINT_TAGS.values(),
)


def training_tags(
    manifest: Mapping[str, Any], model_type: str, git_commit: str, model_md5: str, channel: str
) -> dict[str, str]:
    """The lineage tags of a training run, from the ingest stage's manifest and the trained model."""
    manifest_keys = {
        "raw_md5": "raw_dvc_md5",
        "dataset_sha256": "dataset_sha256",
        "rows": "rows",
        "train_rows": "train_rows",
        "test_rows": "test_rows",
    }
    tags = {
        GIT_COMMIT_TAG: git_commit,
        MODEL_TYPE_TAG: model_type,
        MODEL_MD5_TAG: model_md5,
        CHANNEL_TAG: channel,
    }
    for field_name, tag in FINGERPRINT_TAGS.items():
        tags[tag] = str(manifest.get(manifest_keys[field_name], ""))
    return tags


def parse_models_uri(uri: str) -> tuple[str, str | None, str | None]:
    """`models:/name@alias` → (name, alias, None); `models:/name/3` → (name, None, "3")."""
    if not uri.startswith("models:/"):
        raise ConfigError(
            f"{uri!r} is not a registry URI (expected models:/<name>@<alias> or models:/<name>/<version>)"
        )
    rest = uri.removeprefix("models:/").strip("/")
    if "@" in rest:
        name, alias = rest.split("@", 1)
        if name and alias and "/" not in name:
            return name, alias, None
    elif rest.count("/") == 1:
        name, version = rest.split("/")
        if name and version.isdigit():
            return name, None, version
    raise ConfigError(f"{uri!r} is not a registry URI (expected models:/<name>@<alias> or models:/<name>/<version>)")


class DataFingerprint(BaseModel):
    """What a model was trained on: the DVC md5 of the raw data, the split's sha256 and its sizes."""

    model_config = ConfigDict(extra="allow")

    raw_md5: str = ""
    dataset_sha256: str = ""
    rows: int = 0
    train_rows: int = 0
    test_rows: int = 0


def fingerprint_from_tags(tags: Mapping[str, str]) -> DataFingerprint:
    """The data fingerprint recorded in lineage tags (missing or malformed counts read as 0)."""
    values: dict[str, Any] = {}
    for field_name, tag in FINGERPRINT_TAGS.items():
        value = tags.get(tag, "")
        if field_name.endswith("rows"):
            values[field_name] = int(value) if value.isdigit() else 0
        else:
            values[field_name] = value
    return DataFingerprint(**values)


@dataclass(frozen=True)
class ModelVersion:
    """One registered model version."""

    name: str
    version: str
    run_id: str
    aliases: tuple[str, ...] = ()
    source: str = ""  # where the registry keeps the model: the logged model's URI (`models:/m-…`)
    tags: dict[str, str] = field(default_factory=dict)  # the version's own tags (lineage, gate verdict)
    run_tags: dict[str, str] = field(default_factory=dict)  # the training run's tags (without `mlflow.*`)
    metrics: dict[str, float] = field(default_factory=dict)  # the run's held-out metrics, `test_` prefix removed
    params: dict[str, str] = field(default_factory=dict)  # the run's params, as MLflow keeps them (strings)
    trained_at: str = ""  # ISO-8601 start of the training run

    @property
    def uri(self) -> str:
        """`models:/<name>/<version>`: stays on this version when an alias moves."""
        return f"models:/{self.name}/{self.version}"

    @property
    def lineage(self) -> dict[str, str]:
        """The lineage tags: the version's own, else the run's."""
        return {**self.run_tags, **self.tags}


class ModelDescription(BaseModel):
    """What a served model says about itself: which version, how it scored, what it was trained on."""

    model_config = ConfigDict(extra="forbid")

    name: str
    version: str
    alias: str | None = None
    run_id: str
    model_uri: str
    metrics: dict[str, float]
    threshold: float = Field(ge=0.0, le=1.0)
    trained_at: str
    data_fingerprint: DataFingerprint = DataFingerprint()
    params: dict[str, Any] = {}
    channel: Channel = "sms"  # what the model scores; bundles exported before there were channels are SMS


def param_values(params: Mapping[str, str]) -> dict[str, Any]:
    """MLflow keeps params as strings; give them back their YAML types (`0.5`, `null`, `[1, 2]`)."""
    values: dict[str, Any] = {}
    for key, text in params.items():
        try:
            values[key] = yaml.safe_load(text)
        except yaml.YAMLError:
            values[key] = text
    return values


def describe(version: ModelVersion, alias: str | None, threshold: float, channel: Channel = "sms") -> ModelDescription:
    """The description of a registered version of `channel`'s model, served under `alias` (None: by number)."""
    return ModelDescription(
        name=version.name,
        version=version.version,
        alias=alias,
        run_id=version.run_id,
        model_uri=version.uri,
        metrics={key: float(version.metrics[key]) for key in METRIC_KEYS if key in version.metrics},
        threshold=threshold,
        trained_at=version.trained_at,
        data_fingerprint=fingerprint_from_tags(version.lineage),
        params=param_values(version.params),
        channel=channel,
    )


CHANNEL_PURPOSE: Mapping[str, str] = {
    "sms": "Classifies SMS text messages as spam or ham.",
    "email": "Classifies raw RFC 822 e-mails (headers a sender controls, MIME, HTML, URLs, attachments) as spam or ham.",
}
SHOWN_METRICS = ("f1", "mcc", "precision", "recall", "blocked_ham_rate", "spam_caught_rate", "roc_auc")


def registered_model_markdown(name: str, channel: str, champion: str | None, history: str) -> str:
    """The registered model's description in the MLflow UI: what it is, which version serves, the history."""
    serving = f"`champion` is **v{champion}**." if champion else "No champion yet."
    return (
        f"# {name}\n\nChannel: **{channel}**. {CHANNEL_PURPOSE.get(channel, '')}\n\n"
        f"{serving} `challenger` is the last version the pipeline evaluated; only a passed gate moves "
        f"`champion` (`spamfilter gate` → `spamfilter promote`).\n\n## Champion history\n\n{history}\n"
    )


def version_markdown(
    version: str,
    channel: str,
    metrics: Mapping[str, float],
    lineage: Mapping[str, str],
    verdict: Mapping[str, str] | None = None,
) -> str:
    """A version's description in the MLflow UI: channel, held-out metrics, the gate's verdict, lineage."""
    metric_rows = "\n".join(f"| {key} | {metrics[key]:.4f} |" for key in SHOWN_METRICS if key in metrics)
    lineage_rows = "\n".join(f"| {key} | `{lineage[key]}` |" for key in LINEAGE_TAGS if lineage.get(key))
    gate = "Not judged by the gate yet."
    if verdict:
        gate = f"**{verdict.get('decision', '?').upper()}** at {verdict.get('evaluated_at', '?')}"
        if verdict.get("champion"):
            gate += f" against v{verdict['champion']}"
        gate += f" (held-out split sha256 `{verdict.get('test_sha256', '')[:12]}…`)."
    return (
        f"# Version {version} ({channel})\n\n## Held-out metrics\n\n| metric | value |\n|---|---|\n{metric_rows}\n\n"
        f"## Gate\n\n{gate}\n\n## Lineage\n\n| tag | value |\n|---|---|\n{lineage_rows}\n"
    )
