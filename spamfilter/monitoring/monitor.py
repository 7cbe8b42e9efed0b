"""`spamfilter monitor --channel sms|email`: the I/O around the checks — read the channel's reference
profile, build the current window from the prediction log (the channel's rows) and/or labelled
batches, run the checks, write the reports.

The prediction log is read with its columns untyped and every row validated here, so one corrupt
row (a bad timestamp, a probability of "abc") is skipped and counted instead of failing the run.

E-mail: batches are e-mail corpora in any form the e-mail ingest reads (folders, .eml, mbox, Maildir,
tar archives; labelled by their label folders), each message parsed within the channel's limits (a
refused message is a skipped row). A log row carries the message's size, sender domain and link
domains; the message itself (and so its text and every other e-mail descriptor) only when the API
logs it (LOG_TEXT).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.engine import make_url

from spamfilter import files
from spamfilter.config import Channel, EmailIngestParams, MonitorParams
from spamfilter.data import corpus, mail_corpus, mail_dataset
from spamfilter.errors import DataError
from spamfilter.labels import LABELS
from spamfilter.mail import MailError, MailLimits, parse_message
from spamfilter.modeling.channels import monitored_texts
from spamfilter.modeling.pipeline import model_threshold, predict_labels, spam_probability
from spamfilter.monitoring import decision, predlog, rendering
from spamfilter.monitoring.mail_descriptors import MailFeatures
from spamfilter.monitoring.profile import PROFILE_STAGE_HINT, reference_from_profile
from spamfilter.registry.loading import load_pipeline

log = logging.getLogger(__name__)

DEFAULT_LOG_URL = "sqlite:///predictions.db"
_FEEDBACK_CHUNK = 5000


@dataclass
class WindowRows:
    """Messages of the current window, before scoring; `bad_rows` counts what was skipped and why.
    `inputs` holds what the model scores (SMS text, raw e-mail) for rows not scored yet (batches);
    `mail` each e-mail's features (e-mail windows only)."""

    texts: list[str | None] = field(default_factory=list)
    inputs: list[str | bytes | None] = field(default_factory=list)
    mail: list[MailFeatures] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    scores: list[float | None] = field(default_factory=list)
    predicted: list[str | None] = field(default_factory=list)
    truth: list[str | None] = field(default_factory=list)
    bad_rows: dict[str, int] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)
    first_at: str | None = None
    last_at: str | None = None

    def skip(self, reason: str) -> None:
        self.bad_rows[reason] = self.bad_rows.get(reason, 0) + 1


# --------------------------------------------------------------------------- the prediction log


def _sqlite_file_missing(url: str) -> bool:

    parsed = make_url(url)
    database = parsed.database
    return (
        parsed.drivername.startswith("sqlite")
        and database is not None
        and database not in {"", ":memory:"}
        and not Path(database).exists()
    )


def read_log_window(
    url: str,
    last: int | None,
    since: datetime | None,
    rows: WindowRows,
    channel: Channel | None = None,
    limits: MailLimits | None = None,
) -> None:
    """Append the log's newest `last` predictions (and/or those since `since`) of `channel` (None: of every
    channel) with their feedback. E-mail rows add their features; a logged message is parsed within `limits`."""
    limits = limits or MailLimits()
    if _sqlite_file_missing(url):
        log.warning("prediction log %s does not exist yet: no predictions to monitor", url)
        rows.sources.append(f"{url} (missing)")
        return
    engine = predlog.connect(url)
    read = predlog.read_predictions(engine, last, since, channel)
    for reason, count in read.skipped.items():
        rows.bad_rows[f"log: {reason}"] = rows.bad_rows.get(f"log: {reason}", 0) + count
    records = read.records
    ids = [r.id for r in records]
    feedback: dict[str, str] = {}
    for start in range(0, len(ids), _FEEDBACK_CHUNK):
        feedback.update(predlog.read_feedback(engine, ids[start : start + _FEEDBACK_CHUNK]))
    engine.dispose()
    for record in records:
        truth = feedback.get(record.id)
        if truth is not None and truth not in LABELS:
            rows.skip("feedback: true_label is not ham or spam")
            truth = None
        text = record.text
        if channel == "email":
            features, text = _logged_mail(record, limits)
            rows.mail.append(features)
        rows.texts.append(text)
        rows.inputs.append(None)
        rows.lengths.append(record.text_length)
        rows.scores.append(record.spam_probability)
        rows.predicted.append(record.label)
        rows.truth.append(truth)
    if records:
        rows.first_at = min(rows.first_at or "9999", records[0].created_at.isoformat())
        rows.last_at = max(rows.last_at or "", records[-1].created_at.isoformat())
    rows.sources.append(url)


def _logged_mail(record: predlog.PredictionRecord, limits: MailLimits) -> tuple[MailFeatures, str | None]:
    """An e-mail log row's features and monitored text: from the logged message when the API logged it
    (LOG_TEXT), else the size and domains the row keeps."""
    if record.text is not None:
        try:
            parsed = parse_message(record.text, limits)
        except MailError:
            pass  # the API refuses such messages; an older row may hold one: the row's own fields stand
        else:
            return MailFeatures.of_record(parsed), monitored_texts("email", [record.text.encode("utf-8")])[0]
    features = MailFeatures.of_log_row(record.size_bytes, record.sender_domain, record.url_domains)
    return features, None


# --------------------------------------------------------------------------- labelled batches


def read_batches(
    paths: Sequence[Path], rows: WindowRows, channel: Channel = "sms", ingest: EmailIngestParams | None = None
) -> None:
    """Append the labelled messages of batch files; rows that fail validation are skipped and counted.
    E-mail batches are read as the e-mail ingest reads corpora, with `ingest`'s label folders and limits."""
    if channel == "email":
        read_mail_batches(paths, rows, ingest or EmailIngestParams())
        return
    for path in [p for given in paths for p in corpus.corpus_files(given, hint="a labelled batch file or directory")]:
        parsed = corpus.parse_corpus(path.read_bytes(), str(path))
        for bad in parsed.bad_rows:
            rows.skip(f"batch: {bad.reason}")
            log.warning("skipped %s", bad)
        for message in parsed.messages:
            rows.texts.append(message.text)
            rows.inputs.append(message.text)
            rows.lengths.append(len(message.text))
            rows.scores.append(None)
            rows.predicted.append(None)
            rows.truth.append(message.label)
        rows.sources.append(str(path))


def read_mail_batches(paths: Sequence[Path], rows: WindowRows, ingest: EmailIngestParams) -> None:
    """Append the labelled e-mails of batch corpora, each parsed within the limits."""
    limits = mail_dataset.limits_of(ingest.limits)
    for path in paths:
        read = mail_corpus.read_mail_corpus(path, ingest.label_folders, limits.max_bytes)
        for bad in read.bad_rows:
            rows.skip(f"batch: {bad.reason}")
            log.warning("skipped %s", bad)
        accepted = []
        for message in read.messages:
            try:
                features = MailFeatures.of_record(parse_message(message.raw, limits))
            except MailError as exc:
                rows.skip(f"batch: {exc}")
                log.warning("skipped %s: %s", message.source, exc)
                continue
            accepted.append(message)
            rows.mail.append(features)
            rows.inputs.append(message.raw)
            rows.lengths.append(features.size or 0)
            rows.scores.append(None)
            rows.predicted.append(None)
            rows.truth.append(message.label)
        rows.texts.extend(monitored_texts("email", [message.raw for message in accepted]))
        rows.sources.append(str(path))


# --------------------------------------------------------------------------- scoring and profile


def read_profile(path: Path, channel: Channel | None = None) -> decision.Reference:
    if not path.is_file():
        raise DataError(f"{path}: reference profile not found; {PROFILE_STAGE_HINT}")
    try:
        profile = files.read_json(path)
    except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
        raise DataError(f"{path}: not a reference profile (invalid JSON: {exc}); {PROFILE_STAGE_HINT}") from None
    return reference_from_profile(profile, str(path), channel)


def score_missing(rows: WindowRows, model_source: Path) -> float:
    """Score the rows that have no score yet (batches) with the champion; its threshold."""

    todo = [i for i, s in enumerate(rows.scores) if s is None]
    if not todo:
        return math.nan
    model = load_pipeline(model_source)
    threshold = model_threshold(model)
    probabilities = spam_probability(model, [rows.inputs[i] for i in todo])
    for i, probability, label in zip(todo, probabilities, predict_labels(probabilities, threshold), strict=True):
        rows.scores[i] = float(probability)
        rows.predicted[i] = label
    return threshold


def to_window(rows: WindowRows) -> decision.Window:
    texts = [t for t in rows.texts if t]
    truth = rows.truth if any(t is not None for t in rows.truth) else None
    return decision.Window(
        mail=list(rows.mail) if rows.mail else None,
        lengths=np.asarray(rows.lengths, dtype=float),
        scores=np.asarray(rows.scores, dtype=float),
        predicted=[str(p) for p in rows.predicted],
        texts=texts or None,
        truth=truth,
        info={
            "source": ", ".join(rows.sources) or "nothing",
            "from": rows.first_at,
            "to": rows.last_at,
            "skipped_rows": sum(rows.bad_rows.values()),
            "skipped_reasons": rows.bad_rows,
        },
    )


# --------------------------------------------------------------------------- the command


@dataclass
class MonitorRequest:
    profile: Path
    params: MonitorParams
    use_log: bool
    log_url: str
    last: int | None
    since: datetime | None
    batches: list[Path]
    model: Path
    json_path: Path
    html_path: Path
    github_output: Path | None = None  # a GitHub Actions step-output file to append the decision to
    channel: Channel = "sms"
    # E-mail: the label folders and limits batches are read with (default: the params' defaults).
    ingest: EmailIngestParams | None = None


def run(request: MonitorRequest) -> dict[str, Any]:
    """Read the reference profile, build the window, run the checks, write the reports and return the
    report mapping."""
    return judge(request, read_profile(request.profile, request.channel))


def judge(request: MonitorRequest, reference: decision.Reference) -> dict[str, Any]:
    """`run` against a reference already read: a caller that judges several windows against one
    reference (the e-mail drill) reads it, and tokenizes its texts, once."""
    ingest = request.ingest or EmailIngestParams()
    rows = WindowRows()
    if request.use_log:
        read_log_window(
            request.log_url, request.last, request.since, rows, request.channel, mail_dataset.limits_of(ingest.limits)
        )
    read_batches(request.batches, rows, request.channel, ingest)
    if len(rows.lengths) >= request.params.min_window:
        score_missing(rows, request.model)
    window = to_window(rows)
    if rows.bad_rows:
        log.warning("skipped %d corrupt rows: %s", sum(rows.bad_rows.values()), rows.bad_rows)
    result = decision.run_checks(reference, window, request.params)
    report = {
        "channel": request.channel,
        **result.as_dict(),
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "reference": {"profile": str(request.profile), "threshold": reference.threshold, "metrics": reference.metrics},
        "params": request.params.model_dump(mode="json"),
    }
    files.write_json(request.json_path, report)
    files.write_text(request.html_path, rendering.render_html(report))
    if request.github_output is not None:
        files.append_text(request.github_output, rendering.github_output(report))
    return report


def no_reference(request: MonitorRequest) -> dict[str, Any]:
    """The decision when the channel has no reference profile yet (the first run against an empty DVC
    remote): there is nothing to compare the traffic with, so retrain, which writes the profile. The
    reports and step outputs are written as by `run`, with status `no_reference`."""
    reason = (
        f"no reference profile at {request.profile}: the {request.channel} channel has no trained model to "
        "compare the traffic with yet"
    )
    report: dict[str, Any] = {
        "channel": request.channel,
        "status": "no_reference",
        "retrain_needed": True,
        "reasons": [reason],
        "message": "no reference profile yet: train the channel",
        "window": {"size": 0, "with_text": 0, "labelled": 0, "source": "not read"},
        "checks": [],
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "reference": {"profile": str(request.profile), "threshold": None, "metrics": {}},
        "params": request.params.model_dump(mode="json"),
    }
    files.write_json(request.json_path, report)
    files.write_text(request.html_path, rendering.render_html(report))
    if request.github_output is not None:
        files.append_text(request.github_output, rendering.github_output(report))
    return report
