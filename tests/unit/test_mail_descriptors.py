"""E-mail descriptors (spamfilter.monitoring.mail_descriptors) on generated messages, and the reference
profile that carries them (spamfilter.monitoring.profile): what each descriptor reads of a message, the
leave-one-out unseen-domain shares, the charset categories, the profile's round trip, and old and
other-channel profiles."""

from __future__ import annotations

import json
import random
from typing import Any

import numpy as np
import pytest

from spamfilter.errors import DataError
from spamfilter.mail import MailLimits, parse_message
from spamfilter.monitoring import mail_descriptors as md
from spamfilter.monitoring import profile
from tests.generated_mail import make_corpus, make_email


def test_features_of_one_message() -> None:
    raw = make_email(
        "Alice <alice@Mail.Example.ORG>",
        "Quarterly report",
        "Numbers inside.",
        html=True,
        links=("a.example.com", "b.example.net"),
        attachment=b"x" * 100,
        charset="iso-8859-1",
    )
    features = md.MailFeatures.of_record(parse_message(raw))
    assert features.size == len(raw)
    assert features.sender_domain == "mail.example.org"
    assert features.url_domains == ("a.example.com", "b.example.net")
    assert features.url_count == 2
    assert features.html_share == 1.0
    assert features.attachments == 1
    assert features.subject_length == len("Quarterly report")
    assert features.charset == "iso-8859-1"
    plain = md.MailFeatures.of_record(parse_message(make_email("b@x.example", "s", "plain text")))
    assert (plain.html_share, plain.url_count, plain.attachments, plain.url_domains) == (0.0, 0, 0, ())


def test_a_message_without_text_parts_has_no_charset() -> None:
    raw = b"From: a@example.com\r\nSubject: s\r\nContent-Type: application/pdf\r\n\r\nJVBERi0=\r\n"
    assert md.MailFeatures.of_record(parse_message(raw)).charset == md.NO_CHARSET


def test_a_refused_message_keeps_only_its_size() -> None:
    good = make_email("a@example.com", "hello", "a body")
    huge = make_email("a@example.com", "hello", "x" * 5000)
    features = md.features_of_messages([good, huge, b"not an e-mail at all"], MailLimits(max_bytes=2000))
    assert features[0] == md.MailFeatures.of_record(parse_message(good))
    assert features[1] == md.MailFeatures(size=len(huge))
    assert features[2] == md.MailFeatures(size=len(b"not an e-mail at all"))


def test_a_log_row_has_size_and_domains_only() -> None:
    features = md.MailFeatures.of_log_row(1234, "example.com", ["a.example", "b.example"])
    assert features == md.MailFeatures(size=1234, sender_domain="example.com", url_domains=("a.example", "b.example"))
    assert len(md.descriptor_values([features], "size")) == 1
    for name in ("html_share", "url_count", "subject_length"):
        assert len(md.descriptor_values([features], name)) == 0  # the log cannot tell


def test_descriptor_scales() -> None:
    features = [md.MailFeatures(size=1000, url_count=0), md.MailFeatures(size=100_000, url_count=7)]
    assert md.descriptor_values(features, "size").tolist() == [3.0, 5.0]
    assert md.descriptor_values(features, "url_count").tolist() == [0.0, 3.0]
    assert md.descriptor_values([md.MailFeatures(size=0)], "size").tolist() == [0.0]  # no log of zero
    with pytest.raises(ValueError, match="unknown e-mail descriptor 'colour'"):
        md.descriptor_values(features, "colour")


def test_unseen_domains_leave_one_out_for_the_reference() -> None:
    senders = ["a.com", "a.com", "b.com", "c.com", "c.com", "c.com"]
    known = md.document_frequency([d] for d in senders)
    # Only b.com is the sole holder of its domain: what a new message would see of a domain.
    assert md.unseen_sender_share(senders, known, leave_one_out=True) == md.Share(1, 6)
    assert md.unseen_sender_share(senders, known) == md.Share(0, 6)
    assert md.unseen_sender_share(["a.com", "new.com"], known) == md.Share(1, 2)
    links = [("x.com", "y.com"), ("x.com",), ("y.com", "z.com")]
    link_frequency = md.document_frequency(links)
    assert link_frequency == {"x.com": 2, "y.com": 2, "z.com": 1}
    assert md.unseen_link_share(links, link_frequency, leave_one_out=True) == md.Share(1, 3)
    assert md.unseen_link_share([("x.com", "w.com"), ("y.com",)], link_frequency) == md.Share(1, 2)


def test_leave_one_out_share_matches_new_traffic_from_the_same_source() -> None:
    """The reference's leave-one-out rate estimates what new messages from the same source show."""
    rng = random.Random(3)
    # Zipf-like senders: a few big domains and a long tail.
    pool = [f"d{int(rng.paretovariate(0.8))}.example" for _ in range(20_000)]
    reference, traffic = pool[:10_000], pool[10_000:]
    known = md.document_frequency([d] for d in reference)
    loo = md.unseen_sender_share(reference, known, leave_one_out=True)
    new = md.unseen_sender_share(traffic, known)
    naive = md.unseen_sender_share(reference, known)  # the reference against itself: always 0
    assert naive.k == 0 < loo.k
    assert abs(loo.k / loo.n - new.k / new.n) < 0.01


def test_denominators_are_the_messages_with_a_sender_and_with_links() -> None:
    features = [
        md.MailFeatures(sender_domain="", url_domains=()),
        md.MailFeatures(sender_domain="a.com", url_domains=("x.com",)),
        md.MailFeatures(sender_domain=None, url_domains=None),  # unknown: not counted at all
    ]
    assert md.sender_domains(features) == ["a.com"]
    assert md.link_domains(features) == [("x.com",)]


def test_charset_categories_fold_rare_charsets_into_other() -> None:
    counts = {"us-ascii": 900, "iso-8859-1": 80, "koi8-r": 5, "none": 15}
    categories = md.charset_categories(counts, min_share=0.01)
    assert categories == ["us-ascii", "iso-8859-1", "none"]
    assert md.charset_vector(counts, categories).tolist() == [900, 80, 15, 5]
    assert md.charset_vector({"gb2312": 7, "us-ascii": 3}, categories).tolist() == [3, 0, 0, 7]


def reference_inputs(messages: list[tuple[str, bytes]]) -> dict[str, Any]:
    records = [parse_message(raw) for _, raw in messages]
    return {
        "train_texts": [f"{r.subject}\n{r.body_text}" for r in records],
        "train_labels": [label for label, _ in messages],
        "test_scores": [0.1, 0.9, 0.2, 0.8],
        "test_truth": ["ham", "spam", "ham", "spam"],
        "test_predicted": ["ham", "spam", "ham", "spam"],
        "metrics": {"f1": 1.0},
        "threshold": 0.5,
        "channel": "email",
        "mail": [md.MailFeatures.of_record(r) for r in records],
    }


def test_profile_round_trip_keeps_the_mail_reference() -> None:
    messages = make_corpus(60, 20, seed=1)
    inputs = reference_inputs(messages)
    built = json.loads(json.dumps(profile.build_profile(**inputs)))  # as written to and read from disk
    assert built["schema_version"] == profile.SCHEMA_VERSION == 2
    assert built["channel"] == "email"
    section = built["mail"]
    assert set(section["descriptors"]) == set(md.MAIL_DESCRIPTORS)
    assert len(section["descriptors"]["size"]["values"]) == len(messages)
    assert section["descriptors"]["size"]["scale"] == "log10 bytes"
    reference = profile.reference_from_profile(built, "p.json", "email")
    assert reference.channel == "email"
    expected = md.build_mail_reference(inputs["mail"])
    assert reference.mail is not None
    for name in md.MAIL_DESCRIPTORS:
        np.testing.assert_allclose(reference.mail.descriptors[name], expected.descriptors[name], atol=1e-5)
    assert reference.mail.sender_domains == expected.sender_domains
    assert reference.mail.url_domains == expected.url_domains
    assert reference.mail.unseen_sender == expected.unseen_sender
    assert reference.mail.unseen_url == expected.unseen_url
    assert reference.mail.attachments == expected.attachments
    assert reference.mail.charsets == expected.charsets == md.charset_counts(inputs["mail"])
    assert sum(expected.charsets.values()) == len(messages)


def test_sms_profile_has_no_mail_section_and_still_loads() -> None:
    inputs = {**reference_inputs(make_corpus(30, 10, seed=2)), "channel": "sms", "mail": None}
    built = json.loads(json.dumps(profile.build_profile(**inputs)))
    assert "mail" not in built and built["channel"] == "sms"
    reference = profile.reference_from_profile(built)
    assert reference.channel == "sms" and reference.mail is None


def test_schema_1_profile_reads_as_the_channel_asked_for() -> None:
    built = json.loads(json.dumps(profile.build_profile(**{**reference_inputs(make_corpus(30, 10, 4)), "mail": None})))
    del built["channel"]
    built["schema_version"] = 1
    assert profile.reference_from_profile(built).channel == "sms"
    as_email = profile.reference_from_profile(built, "old.json", "email")
    assert as_email.channel == "email" and as_email.mail is None  # its e-mail checks are skipped


def test_a_profile_of_another_channel_is_refused_with_the_right_path() -> None:
    built = json.loads(json.dumps(profile.build_profile(**reference_inputs(make_corpus(30, 10, 5)))))
    with pytest.raises(DataError, match=r"p\.json: the reference profile of the email channel, not of sms") as info:
        profile.reference_from_profile(built, "p.json", "sms")
    assert "models/sms/reference_profile.json" in str(info.value)
    built["channel"] = "fax"
    with pytest.raises(DataError, match="unknown channel 'fax'"):
        profile.reference_from_profile(built, "p.json")


@pytest.mark.parametrize("version", [0, 3, None])
def test_unknown_schema_version_names_the_versions_read(version: int | None) -> None:
    built = profile.build_profile(**reference_inputs(make_corpus(30, 10, 6)))
    built["schema_version"] = version
    with pytest.raises(DataError, match="expected one of 1, 2; rebuild it"):
        profile.reference_from_profile(built, "p.json")


def test_malformed_mail_section_names_the_file() -> None:
    built = json.loads(json.dumps(profile.build_profile(**reference_inputs(make_corpus(30, 10, 7)))))
    del built["mail"]["sender_domains"]["document_frequency"]
    with pytest.raises(DataError, match=r"p\.json: malformed reference profile .*document_frequency"):
        profile.reference_from_profile(built, "p.json", "email")
