"""The serving bundle: what `spamfilter export` writes and the API (and the Docker image) loads.

Layout of a bundle directory:
  model/          the MLflow model directory of the sklearn pipeline (as logged to the registry)
  metadata.json   `BundleMetadata`: which model this is, its metrics, threshold and data fingerprint
  model_card.md   the same, for people
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path

from pydantic import ValidationError

from spamfilter import files
from spamfilter.errors import BundleError
from spamfilter.registry.versions import ModelDescription

MODEL_DIR = "model"
METADATA_FILE = "metadata.json"
MODEL_CARD_FILE = "model_card.md"


class BundleMetadata(ModelDescription):
    """`metadata.json`: the exported version's description and when it was exported."""

    exported_at: str


def model_path(bundle: Path) -> Path:
    return bundle / MODEL_DIR


def read_bundle_metadata(bundle: Path) -> BundleMetadata:
    """Read and validate `<bundle>/metadata.json`."""
    path = bundle / METADATA_FILE
    try:
        return BundleMetadata.model_validate_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"{path}: not found; is {bundle} a bundle written by `spamfilter export`?") from None
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise BundleError(f"{path}: {problems}") from None


# What each channel's model is for and was trained on (the model card's intended use).
INTENDED_USE: dict[str, str] = {
    "sms": "Classifies English SMS messages as `spam` or `ham`. Trained on the UCI SMS Spam Collection "
    "(Almeida, Gómez Hidalgo, Yamakami, 2011; CC BY 4.0) plus any labelled batches merged in. Not evaluated on "
    "other languages or on e-mail.",
    "email": "Classifies raw RFC 822 e-mail messages (headers, MIME parts, HTML, attachments) as `spam` or `ham`, "
    "reading only what a sender controls and a receiving server sees (never Received, List-*, X-* or other "
    "collection headers). Trained on the Apache SpamAssassin public corpus (2002-2003, mostly English) plus any "
    "labelled batches merged in. Not evaluated on SMS or on present-day mail streams.",
}


def render_model_card(meta: BundleMetadata) -> str:
    """A Markdown model card from the bundle metadata."""
    metric_rows = "\n".join(f"| {key} | {value:.4f} |" for key, value in meta.metrics.items())
    fingerprint = meta.data_fingerprint.model_dump()
    data_rows = "\n".join(f"| {key} | {value} |" for key, value in fingerprint.items())
    param_rows = "\n".join(f"| `{key}` | `{value}` |" for key, value in sorted(meta.params.items()))
    return f"""# Model card: {meta.name} version {meta.version}

{f"Alias: `{meta.alias}`. " if meta.alias else ""}MLflow run `{meta.run_id}`; source `{meta.model_uri}`.
Trained {meta.trained_at}; exported {meta.exported_at}.

## Intended use
{INTENDED_USE[meta.channel]} Output: P(spam) and a label, spam when P(spam) ≥ {meta.threshold}.

## Held-out metrics
| metric | value |
|---|---|
{metric_rows}

## Data fingerprint
| field | value |
|---|---|
{data_rows}

## Parameters
| param | value |
|---|---|
{param_rows}
"""


def write_bundle(destination: Path, model_dir: Path, meta: BundleMetadata) -> Path:
    """Write a bundle: the MLflow model directory, `metadata.json` and `model_card.md`.

    The bundle is assembled beside `destination` and renamed into place, so a failed export leaves
    the previous bundle as it was; readers see either the old bundle or the new one (the swap is
    two renames, so for an instant neither: reload rather than read while an export runs)."""
    if destination.exists() and not destination.is_dir():
        raise BundleError(f"{destination}: exists and is not a directory")
    if not (model_dir / "MLmodel").is_file():
        raise BundleError(f"{model_dir}: not an MLflow model directory (no MLmodel file)")
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", suffix=".tmp", dir=destination.parent))
    retired = destination.with_name(f".{destination.name}.old-{uuid.uuid4().hex[:8]}")
    try:
        shutil.copytree(model_dir, staging / MODEL_DIR)
        files.write_text(staging / METADATA_FILE, meta.model_dump_json(indent=2) + "\n")
        files.write_text(staging / MODEL_CARD_FILE, render_model_card(meta))
        read_bundle_metadata(staging)
        if destination.exists():
            destination.rename(retired)
        staging.rename(destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(retired, ignore_errors=True)
    return destination
