"""E-mail descriptors: what the monitor compares of e-mail besides its text (subject and body, which the
text descriptors, vocabulary and domain checks see as for SMS). Pure functions over `MailFeatures`.

    size               log10 of the raw message's bytes                      distribution (KS, normed Wasserstein)
    html_share         share of the body text that came from HTML parts      distribution
    url_count          log2(1 + links in the message)                        distribution
    subject_length     characters of the decoded subject                     distribution
    attachment_share   messages with at least one attachment                 proportion (Fisher)
    unseen_sender      messages whose sender domain training never saw       proportion (Fisher)
    unseen_url_domain  messages with a link to a domain training never saw   proportion (Fisher)
    charset_mix        each message's main charset (its first text part's)   categories (chi-square, JS distance)

Size and link counts are compared on log scales: both have tails of a few huge messages that would
otherwise set the normed distance's scale. The unseen shares are measured on the reference's own
messages leave-one-out (a domain only that message has counts as unseen), as the SMS out-of-vocabulary
rate is, so the reference's share is what new traffic from the same source would show; their
denominators are the messages that have a sender domain, and the messages that have links.

A prediction-log row keeps the size, the sender domain and the link domains without the message
(`MailFeatures.of_log_row`); the other descriptors need the message itself (batches, or a log written
with LOG_TEXT), and their checks are skipped without it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from spamfilter.mail import MailError, MailLimits, MailRecord, parse_message
from spamfilter.mail.limits import DEFAULT_LIMITS

# Per-message distributions, in report order.
MAIL_DESCRIPTORS = ("size", "html_share", "url_count", "subject_length")
# The label of a message none of whose text parts declares (or reveals) a charset.
NO_CHARSET = "none"
# The charset category every charset too rare in the reference falls into.
OTHER_CHARSET = "other"


@dataclass(frozen=True, slots=True)
class MailFeatures:
    """What the e-mail checks read of one message. None: the source does not have it (a prediction-log
    row without the message). An empty `sender_domain` is a message without a sender address."""

    size: int | None = None
    sender_domain: str | None = None
    url_domains: tuple[str, ...] | None = None
    html_share: float | None = None
    url_count: int | None = None
    attachments: int | None = None
    subject_length: int | None = None
    charset: str | None = None  # the first text part's charset, NO_CHARSET if none

    @classmethod
    def of_record(cls, record: MailRecord) -> MailFeatures:
        return cls(
            size=record.size,
            sender_domain=record.sender_domain,
            url_domains=record.url_domains,
            html_share=record.html_share,
            url_count=len(record.urls),
            attachments=len(record.attachments),
            subject_length=len(record.subject),
            charset=record.charsets[0] if record.charsets else NO_CHARSET,
        )

    @classmethod
    def of_log_row(cls, size: int | None, sender_domain: str | None, url_domains: Sequence[str] | None) -> MailFeatures:
        """The fields a prediction-log row keeps without the message text."""
        return cls(
            size=size, sender_domain=sender_domain, url_domains=None if url_domains is None else tuple(url_domains)
        )


def features_of_messages(raws: Iterable[bytes | str], limits: MailLimits = DEFAULT_LIMITS) -> list[MailFeatures]:
    """Parse raw messages into features. A message the parser refuses keeps only its size: a training
    split holds none (the ingest refused them), traffic may."""
    out = []
    for raw in raws:
        try:
            out.append(MailFeatures.of_record(parse_message(raw, limits)))
        except MailError:
            out.append(MailFeatures(size=len(raw.encode("utf-8") if isinstance(raw, str) else raw)))
    return out


def descriptor_values(features: Sequence[MailFeatures], name: str) -> np.ndarray:
    """One descriptor of the messages that have it, on the scale the checks compare."""
    if name == "size":
        return np.log10(np.maximum([f.size for f in features if f.size is not None], 1.0))
    if name == "html_share":
        return np.array([f.html_share for f in features if f.html_share is not None], dtype=float)
    if name == "url_count":
        return np.log2(1.0 + np.array([f.url_count for f in features if f.url_count is not None], dtype=float))
    if name == "subject_length":
        return np.array([f.subject_length for f in features if f.subject_length is not None], dtype=float)
    raise ValueError(f"unknown e-mail descriptor {name!r}: expected one of {', '.join(MAIL_DESCRIPTORS)}")


# The unit each descriptor is compared in, for the report.
DESCRIPTOR_SCALES = {
    "size": "log10 bytes",
    "html_share": "share of body characters",
    "url_count": "log2(1 + links)",
    "subject_length": "characters",
}


@dataclass(frozen=True)
class Share:
    """k of n messages."""

    k: int
    n: int


def attachment_share(features: Sequence[MailFeatures]) -> Share:
    counts = [f.attachments for f in features if f.attachments is not None]
    return Share(sum(count > 0 for count in counts), len(counts))


def sender_domains(features: Sequence[MailFeatures]) -> list[str]:
    """The sender domains of the messages that have one."""
    return [f.sender_domain for f in features if f.sender_domain]


def link_domains(features: Sequence[MailFeatures]) -> list[tuple[str, ...]]:
    """The link domains of the messages that have links."""
    return [f.url_domains for f in features if f.url_domains]


def unseen_sender_share(domains: Sequence[str], known: Mapping[str, int], leave_one_out: bool = False) -> Share:
    """Messages whose sender domain is not in `known` (domain → messages); for the reference's own
    messages (`leave_one_out`), whose domain no other message has."""
    seen_at_least = 2 if leave_one_out else 1
    return Share(sum(known.get(domain, 0) < seen_at_least for domain in domains), len(domains))


def unseen_link_share(domains: Sequence[Sequence[str]], known: Mapping[str, int], leave_one_out: bool = False) -> Share:
    """Messages with a link to a domain not in `known` (domain → messages linking to it); leave-one-out
    for the reference's own messages, as `unseen_sender_share`."""
    seen_at_least = 2 if leave_one_out else 1
    unseen = sum(any(known.get(domain, 0) < seen_at_least for domain in message) for message in domains)
    return Share(unseen, len(domains))


def document_frequency(groups: Iterable[Iterable[str]]) -> dict[str, int]:
    """item → messages holding it, by count and then by name (the same order in every run)."""
    counts: Counter[str] = Counter()
    for group in groups:
        counts.update(set(group))
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def unseen_items(groups: Sequence[Iterable[str]], known: Mapping[str, int], top: int) -> list[dict[str, Any]]:
    """The most common items of the current messages that `known` lacks, with the share of messages holding each."""
    frequency = document_frequency(groups)
    n = max(len(groups), 1)
    return [
        {"domain": item, "current_share": count / n} for item, count in frequency.items() if known.get(item, 0) == 0
    ][:top]


def charset_counts(features: Sequence[MailFeatures]) -> dict[str, int]:
    counts = Counter(f.charset for f in features if f.charset is not None)
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def charset_categories(reference_counts: Mapping[str, int], min_share: float) -> list[str]:
    """The reference's charsets common enough to compare on their own (the rest fall into OTHER_CHARSET):
    a category of a handful of messages would make the chi-square test's expected counts too small."""
    total = max(sum(reference_counts.values()), 1)
    return [name for name, count in reference_counts.items() if count / total >= min_share and name != OTHER_CHARSET]


def charset_vector(counts: Mapping[str, int], categories: Sequence[str]) -> np.ndarray:
    """Counts per category, OTHER_CHARSET last."""
    kept = [counts.get(name, 0) for name in categories]
    other = sum(counts.values()) - sum(kept)
    return np.array([*kept, other], dtype=float)


# --------------------------------------------------------------------------- the reference


@dataclass
class MailReference:
    """The e-mail part of the reference profile, as the checks use it."""

    descriptors: dict[str, np.ndarray]
    attachments: Share
    sender_domains: dict[str, int]  # domain → training messages sent from it
    unseen_sender: Share  # leave-one-out, over training messages with a sender domain
    url_domains: dict[str, int]  # domain → training messages linking to it
    unseen_url: Share  # leave-one-out, over training messages with links
    charsets: dict[str, int]  # main charset → training messages


def build_mail_reference(features: Sequence[MailFeatures]) -> MailReference:
    """The e-mail reference of the training messages."""
    senders = sender_domains(features)
    links = link_domains(features)
    sender_frequency = document_frequency([domain] for domain in senders)
    url_frequency = document_frequency(links)
    return MailReference(
        descriptors={name: descriptor_values(features, name) for name in MAIL_DESCRIPTORS},
        attachments=attachment_share(features),
        sender_domains=sender_frequency,
        unseen_sender=unseen_sender_share(senders, sender_frequency, leave_one_out=True),
        url_domains=url_frequency,
        unseen_url=unseen_link_share(links, url_frequency, leave_one_out=True),
        charsets=charset_counts(features),
    )
