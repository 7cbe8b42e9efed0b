"""The reference profile: what the monitor compares the current window against.

Built by the `evaluate` stage from the training texts (descriptors, vocabulary with document
frequencies, the texts themselves for the vocabulary and domain-classifier checks) and the
held-out results (the model's score distribution, predicted spam rate, confusion counts and
metrics); for the e-mail channel also the training messages' e-mail descriptors (`mail`: sizes,
HTML shares, links, attachments, subject lengths, sender and link domains, charsets). Pure: the
caller reads and writes the files.

Schema versions: 2 may name its `channel` and hold the `mail` section; 1 (before channels) is read as
the channel the monitor is asked about (an e-mail profile without e-mail descriptors: their checks are
then skipped).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from spamfilter.config import CHANNELS, Channel, ChannelPaths
from spamfilter.errors import DataError
from spamfilter.mail import MailLimits
from spamfilter.modeling.channels import monitored_texts
from spamfilter.modeling.evaluation import Evaluation
from spamfilter.modeling.metrics import confusion_counts
from spamfilter.monitoring import decision, descriptors
from spamfilter.monitoring.mail_descriptors import (
    DESCRIPTOR_SCALES,
    MAIL_DESCRIPTORS,
    MailFeatures,
    MailReference,
    Share,
    build_mail_reference,
    features_of_messages,
)

SCHEMA_VERSION = 2
READABLE_SCHEMA_VERSIONS = (1, 2)
PROFILE_STAGE_HINT = "it is written by the `evaluate` stage: run `dvc repro` (or `make repro`)"


def summarise(column: np.ndarray) -> dict[str, Any]:
    """A descriptor's column as the profile stores it: summary figures and the values themselves."""
    if not len(column):
        return {"mean": None, "std": None, "quantiles": [], "values": []}
    return {
        "mean": round(float(np.mean(column)), 6),
        "std": round(float(np.std(column)), 6),
        "quantiles": [round(float(q), 6) for q in np.quantile(column, [0.05, 0.25, 0.5, 0.75, 0.95])],
        "values": [round(float(v), 5) for v in column],
    }


def build_profile(
    train_texts: Sequence[str],
    train_labels: Sequence[str],
    test_scores: Sequence[float],
    test_truth: Sequence[str],
    test_predicted: Sequence[str],
    metrics: Mapping[str, float],
    threshold: float,
    model: Mapping[str, Any] | None = None,
    channel: Channel | None = None,
    mail: Sequence[MailFeatures] | None = None,
) -> dict[str, Any]:
    """The reference profile as a JSON-ready mapping. `channel` is recorded when given (a profile that
    names none is read as the channel the monitor is asked about); `mail`: the e-mail features of the
    training messages, in the order of `train_texts` (e-mail channel only)."""
    tokenized = descriptors.tokenize(train_texts)
    vocabulary = descriptors.document_frequencies(tokenized.terms)
    values = descriptors.descriptors(tokenized, vocabulary, leave_one_out=True)
    scores = np.asarray(test_scores, dtype=float)
    built: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "model": dict(model or {}),
        "texts": {
            "messages": len(train_texts),
            "spam": sum(label == "spam" for label in train_labels),
            "sample": list(train_texts),
        },
        "descriptors": {name: summarise(column) for name, column in values.items()},
        "vocabulary": {"messages": len(train_texts), "document_frequency": dict(vocabulary.most_common())},
        "scores": {
            "threshold": float(threshold),
            "values": [round(float(s), 6) for s in scores],
            "predicted_spam": sum(p == "spam" for p in test_predicted),
            "truth_spam": sum(t == "spam" for t in test_truth),
        },
        "metrics": {key: float(value) for key, value in metrics.items()},
        "confusion": confusion_counts(test_truth, test_predicted),
    }
    if channel is not None:
        built["channel"] = channel
    if mail is not None:
        built["mail"] = mail_section(build_mail_reference(mail))
    return built


def mail_section(reference: MailReference) -> dict[str, Any]:
    """The profile's `mail` section."""
    return {
        "descriptors": {
            name: {**summarise(reference.descriptors[name]), "scale": DESCRIPTOR_SCALES[name]}
            for name in MAIL_DESCRIPTORS
        },
        "attachments": {"messages": reference.attachments.n, "with_attachments": reference.attachments.k},
        "sender_domains": {
            "messages": reference.unseen_sender.n,
            "unseen_leave_one_out": reference.unseen_sender.k,
            "document_frequency": reference.sender_domains,
        },
        "url_domains": {
            "messages": reference.unseen_url.n,
            "unseen_leave_one_out": reference.unseen_url.k,
            "document_frequency": reference.url_domains,
        },
        "charsets": reference.charsets,
    }


def mail_reference_from_section(section: Mapping[str, Any]) -> MailReference:
    """The checks' view of a profile's `mail` section (KeyError, TypeError or ValueError if malformed)."""
    senders, links = section["sender_domains"], section["url_domains"]
    return MailReference(
        descriptors={
            name: np.asarray(section["descriptors"][name]["values"], dtype=float) for name in MAIL_DESCRIPTORS
        },
        attachments=Share(int(section["attachments"]["with_attachments"]), int(section["attachments"]["messages"])),
        sender_domains={str(k): int(v) for k, v in senders["document_frequency"].items()},
        unseen_sender=Share(int(senders["unseen_leave_one_out"]), int(senders["messages"])),
        url_domains={str(k): int(v) for k, v in links["document_frequency"].items()},
        unseen_url=Share(int(links["unseen_leave_one_out"]), int(links["messages"])),
        charsets={str(k): int(v) for k, v in section["charsets"].items()},
    )


def profile_channel(profile: Mapping[str, Any], source: str, expected: Channel | None) -> Channel:
    """The channel a profile describes: its `channel`, else (a profile from before channels) the one
    expected, else SMS. A profile of another channel than the one expected is an error."""
    named = profile.get("channel")
    channel = next((known for known in CHANNELS if known == named), None)
    if named is not None and channel is None:
        raise DataError(f"{source}: unknown channel {named!r} (expected {', '.join(CHANNELS)}); {PROFILE_STAGE_HINT}")
    if channel is not None and expected is not None and channel != expected:
        raise DataError(
            f"{source}: the reference profile of the {channel} channel, not of {expected}; the {expected} channel's "
            f"is {ChannelPaths(expected).profile}"
        )
    return channel or expected or "sms"


def reference_from_profile(
    profile: Mapping[str, Any], source: str = "reference profile", channel: Channel | None = None
) -> decision.Reference:
    """The monitor's view of a profile, checked: a clear error naming what is missing, or the channel
    when the profile is another `channel`'s than the one asked for."""
    try:
        if profile.get("schema_version") not in READABLE_SCHEMA_VERSIONS:
            raise DataError(
                f"{source}: schema_version {profile.get('schema_version')!r}, expected one of "
                f"{', '.join(map(str, READABLE_SCHEMA_VERSIONS))}; rebuild it: {PROFILE_STAGE_HINT}"
            )
        mail = profile.get("mail")
        return decision.Reference(
            texts=[str(t) for t in profile["texts"]["sample"]],
            descriptors={
                name: np.asarray(profile["descriptors"][name]["values"], dtype=float)
                for name in descriptors.DESCRIPTORS
            },
            vocabulary={str(k): int(v) for k, v in profile["vocabulary"]["document_frequency"].items()},
            scores=np.asarray(profile["scores"]["values"], dtype=float),
            predicted_spam=int(profile["scores"]["predicted_spam"]),
            label_spam=int(profile["texts"]["spam"]),
            label_total=int(profile["texts"]["messages"]),
            confusion={k: int(v) for k, v in profile["confusion"].items()},
            metrics={k: float(v) for k, v in profile["metrics"].items()},
            threshold=float(profile["scores"]["threshold"]),
            channel=profile_channel(profile, source, channel),
            mail=None if mail is None else mail_reference_from_section(mail),
        )
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"{source}: malformed reference profile ({exc!r}); {PROFILE_STAGE_HINT}") from None


def channel_profile(
    channel: Channel,
    train_inputs: Sequence[Any],
    train_labels: Sequence[str],
    evaluation: Evaluation,
    model_md5: str,
    limits: MailLimits | None = None,
) -> dict[str, Any]:
    """The reference profile of a channel's model, as the `evaluate` stage writes it (and the e-mail drill
    rebuilds it): the monitored texts of the training inputs, the held-out results, the channel, and for
    e-mail the training messages' e-mail features parsed within `limits`."""
    mail = None
    if channel == "email":
        mail = features_of_messages(train_inputs, limits) if limits is not None else features_of_messages(train_inputs)
    return build_profile(
        monitored_texts(channel, train_inputs),
        train_labels,
        evaluation.probabilities,
        evaluation.truth,
        evaluation.predicted,
        evaluation.scores,
        evaluation.threshold,
        model={"md5": model_md5},
        channel=channel,
        mail=mail,
    )
