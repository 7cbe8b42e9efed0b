"""The e-mail channel's serving path, shared by POST /predict/email and the spamd listener: a raw message
parsed for its summary and the prediction log's fields, scored by the e-mail model, counted and logged;
and spamd's TELL turned into the true label of that message for the monitor.

Everything here blocks (parsing, the model, the database): callers run it off the event loop.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError

from api.deps import AppState, ChannelService
from api.model_holder import LoadedModel
from api.spamd import Feedback, Scorer, ScorerNotReadyError
from api.spamd_protocol import EmailVerdict, TellLabel, printable
from spamfilter.mail import MailLimits, MailRecord, parse_message
from spamfilter.monitoring import predlog

log = logging.getLogger(__name__)

SUMMARY_SUBJECT_CHARS = 200  # a subject is cut to this in answers: a summary, not the message

# The headers the spamd listener's PROCESS puts on top of a message (api.spamd_protocol.spam_headers): the
# optional flag, our status line (which names our rule and the model) and the score.
_OUR_SPAM_HEADERS = re.compile(
    rb"(?:X-Spam-Flag: YES\r?\n)?"
    rb"X-Spam-Status: (?:Yes|No), score=\S+ required=\S+ tests=\S*SPAMFILTER_EMAIL\S* p_spam=\S+ model=\S+\r?\n"
    rb"X-Spam-Score: \S+\r?\n"
)
_END_OF_HEADERS = re.compile(rb"\r?\n\r?\n")


def scanned_message(raw: bytes) -> bytes:
    """The message as it was when this service scored it.

    A message comes back to TELL (spamc -L) from a mailbox: on top of what was scanned it carries the headers
    our PROCESS added and, above those, what delivery added afterwards (Return-Path, Delivered-To, ...). So
    when its header block holds our X-Spam-* lines, the message scanned is what follows them."""
    end = _END_OF_HEADERS.search(raw)
    ours = _OUR_SPAM_HEADERS.search(raw, 0, end.end() if end else len(raw))
    if ours is None or (ours.start() > 0 and raw[ours.start() - 1 : ours.start()] != b"\n"):
        return raw
    return raw[ours.end() :]


def message_sha256(raw: bytes) -> str:
    """The key of a message in the prediction log (`text_sha256` of e-mail rows, and of TELL's labels): the
    sha256 of the message as scanned, so a TELL of a delivered message finds its prediction."""
    return hashlib.sha256(scanned_message(raw)).hexdigest()


@dataclass(frozen=True)
class ScoredEmail:
    """One scored message: the model that scored it, what the parser read, the verdict and its log id."""

    loaded: LoadedModel
    parsed: MailRecord
    spam_probability: float
    label: str
    prediction_id: str | None

    def summary_line(self) -> str:
        """One line for spamd's REPORT."""
        parsed = self.parsed
        subject = printable(parsed.subject, limit=80)
        return (
            f"subject {subject!r}, sender domain {parsed.sender_domain or '(none)'}, "
            f"{len(parsed.urls)} URL(s), {len(parsed.attachments)} attachment(s)"
        )


def monitored_length(parsed: MailRecord) -> int:
    """The length of the text the monitor profiles for an e-mail (`spamfilter.modeling.email.monitored_texts`:
    the subject and the body text, a line apart), from the record already parsed."""
    return len(parsed.subject) + 1 + len(parsed.body_text)


def score_email(state: AppState, service: ChannelService, loaded: LoadedModel, raw: bytes) -> ScoredEmail:
    """Parse, score, count and log one raw message with `loaded` (the e-mail model taken once by the caller).

    Raises MailError when the message is not an e-mail or is over a parse limit (EMAIL_MAX_BYTES here, the
    model's own limits inside it). The parse here gives the summary and the log's fields; the model parses the
    message again, inside its pipeline, as in training: its lean scorer takes raw messages. That second parse
    is about a tenth of the cost of scoring one message (0.5 ms of 5.5 ms, measured on generated mail); a
    scorer of parsed records in `spamfilter.modeling.email` would save it."""
    parsed = parse_message(raw, MailLimits(max_bytes=state.settings.email_max_bytes))
    probability = float(loaded.score([raw])[0])
    (label,) = loaded.labels_of([probability])
    state.metrics.predicted(service.channel, label)
    writer = state.writer
    prediction_id = (
        writer.record_email(
            loaded.info.version,
            raw,
            parsed,
            message_sha256(raw),
            monitored_length(parsed),
            probability,
            label,
        )
        if writer
        else None
    )
    return ScoredEmail(loaded, parsed, probability, label, prediction_id)


def spamd_scorer(state: AppState) -> Scorer:
    """The spamd listener's scorer: the e-mail model serving now, each verdict counted and logged."""

    def score(raw: bytes) -> EmailVerdict:
        service = state.channels.get("email")
        if service is None:
            raise ScorerNotReadyError("the e-mail channel is off on this server (EMAIL_MODEL_URI)")
        loaded = service.holder.current
        if loaded is None:
            raise ScorerNotReadyError(f"no e-mail model loaded yet: {service.holder.last_error or 'still loading'}")
        scored = score_email(state, service, loaded, raw)
        return EmailVerdict(scored.spam_probability, loaded.threshold, loaded.info.version, scored.summary_line())

    return score


def spamd_feedback(state: AppState) -> Feedback:
    """TELL for the monitor: `spamc -L spam|ham` records the message's true label against its sha256 (there is
    no prediction id in the protocol), which labels every logged e-mail prediction of that message; `spamc -L
    forget` withdraws it. True when that changed the log, so spamc says "learned" or "already learned"."""

    def tell(raw: bytes, label: TellLabel) -> bool:
        writer = state.writer
        if writer is None:  # not reached: the listener gets no feedback function when the log is off
            raise ScorerNotReadyError("the prediction log is off (PREDICTION_LOG_URL is empty)")
        parse_message(raw, MailLimits(max_bytes=state.settings.email_max_bytes))  # an e-mail, within limits
        key = message_sha256(raw)
        try:
            if label == "forget":
                changed = predlog.forget_message(writer.engine, "email", key)
            else:
                changed = predlog.learn_message(writer.engine, "email", key, label)
        except SQLAlchemyError as exc:
            raise ScorerNotReadyError(f"the prediction log is unreachable: {type(exc).__name__}") from exc
        log.info("spamd TELL: %s for message %s (%s)", label, key[:12], "recorded" if changed else "unchanged")
        return changed

    return tell
