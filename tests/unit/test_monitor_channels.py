"""The monitor per channel: the e-mail checks in the decision (spamfilter.monitoring.decision) on
generated e-mail — quiet on more mail of the training generation, firing on the later generation and
each on its own drift, skipped with the reason when the window or the reference lacks what they read —
and the report naming its channel (summary table, HTML, GITHUB_OUTPUT lines)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any
from xml.etree import ElementTree

import numpy as np
import pytest

from spamfilter.config import MonitorParams
from spamfilter.mail import parse_message
from spamfilter.monitoring import checks, decision, profile, rendering
from spamfilter.monitoring import mail_descriptors as md
from tests.generated_mail import make_corpus

PARAMS = MonitorParams()
MAIL_CHECKS = set(decision.MAIL_CHECK_NAMES)


@dataclasses.dataclass
class Sample:
    labels: list[str]
    texts: list[str]
    features: list[md.MailFeatures]


def sample(n_ham: int, n_spam: int, seed: int, generation: int = 1) -> Sample:
    messages = make_corpus(n_ham, n_spam, seed, generation)
    records = [parse_message(raw) for _, raw in messages]
    return Sample(
        [label for label, _ in messages],
        [f"{r.subject}\n{r.body_text}" for r in records],
        [md.MailFeatures.of_record(r) for r in records],
    )


def scores_of(labels: list[str], seed: int) -> np.ndarray:
    """A model's scores: the same distribution per class in every sample (no prediction drift)."""
    rng = np.random.default_rng(seed)
    return np.array([rng.beta(8, 2) if label == "spam" else rng.beta(1, 12) for label in labels])


@pytest.fixture(scope="module")
def reference() -> decision.Reference:
    train, held_out = sample(480, 120, seed=1), sample(160, 40, seed=2)
    scores = scores_of(held_out.labels, 0)
    predicted = ["spam" if s >= 0.5 else "ham" for s in scores]
    built = profile.build_profile(
        train.texts,
        train.labels,
        scores.tolist(),
        held_out.labels,
        predicted,
        {"precision": 1.0, "recall": 1.0, "f1": 1.0},
        0.5,
        channel="email",
        mail=train.features,
    )
    return profile.reference_from_profile(built, "generated", "email")


def window_of(drawn: Sample, seed: int, with_text: bool = True) -> decision.Window:
    scores = scores_of(drawn.labels, seed)
    return decision.Window(
        lengths=np.array([len(t) for t in drawn.texts], dtype=float),
        scores=scores,
        predicted=["spam" if s >= 0.5 else "ham" for s in scores],
        texts=drawn.texts if with_text else None,
        truth=list(drawn.labels),
        mail=drawn.features,
    )


def by_name(result: decision.MonitorResult) -> dict[str, checks.CheckResult]:
    return {c.name: c for c in result.checks}


def test_more_mail_of_the_training_generation_is_quiet(reference: decision.Reference) -> None:
    result = decision.run_checks(reference, window_of(sample(240, 60, seed=3), 3), PARAMS)
    found = by_name(result)
    assert set(found) >= MAIL_CHECKS
    assert all(found[name].skipped is None for name in MAIL_CHECKS)  # every e-mail check ran
    assert not [c.name for c in result.checks if c.drifted]
    assert result.retrain_needed is False and result.status == "ok"


def test_the_later_generation_fires_the_mail_checks(reference: decision.Reference) -> None:
    result = decision.run_checks(reference, window_of(sample(240, 60, seed=3, generation=2), 3), PARAMS)
    fired = {c.name for c in result.checks if c.drifted}
    assert {
        "unseen_sender_domain",
        "unseen_url_domain",
        "charset_mix",
        "descriptor:html_share",
        "descriptor:size",
    } <= fired
    assert result.retrain_needed is True
    sender = by_name(result)["unseen_sender_domain"]
    assert sender.reference is not None and sender.current is not None
    assert sender.reference < 0.2 and sender.current > 0.8
    new_domains = [u["domain"] for u in sender.details["unseen"]]
    assert "chat.example.io" in new_domains
    reason = next(r for r in result.reasons if r.startswith("unseen_url_domain"))
    assert "new domains: " in reason and "example.top" in reason
    charset_reason = next(r for r in result.reasons if r.startswith("charset_mix"))
    # The later generation's charsets are not among the reference's: they fall into "other", named.
    assert re.search(r"other \d+%→\d+%", charset_reason)
    assert "(other: utf-8 " in charset_reason


def _with(field_name: str, value: Any) -> Callable[[md.MailFeatures], md.MailFeatures]:
    return lambda f: dataclasses.replace(f, **{field_name: value})


@pytest.mark.parametrize(
    ("check", "transform"),
    [
        ("attachment_share", _with("attachments", 1)),
        ("unseen_sender_domain", lambda f: dataclasses.replace(f, sender_domain=f"{f.size}.new.example")),
        ("unseen_url_domain", _with("url_domains", ("brand-new.example",))),
        ("charset_mix", _with("charset", "koi8-r")),
        ("descriptor:subject_length", lambda f: dataclasses.replace(f, subject_length=(f.subject_length or 0) + 60)),
        ("descriptor:size", lambda f: dataclasses.replace(f, size=(f.size or 0) * 20)),
        ("descriptor:html_share", _with("html_share", 1.0)),
        ("descriptor:url_count", lambda f: dataclasses.replace(f, url_count=(f.url_count or 0) + 12)),
    ],
)
def test_each_mail_check_fires_on_its_own_drift(
    reference: decision.Reference, check: str, transform: Callable[[md.MailFeatures], md.MailFeatures]
) -> None:
    clean = sample(240, 60, seed=4).features
    assert reference.mail is not None
    quiet = decision.decide(decision.mail_checks(reference.mail, clean, PARAMS), {}, PARAMS)
    assert not [c.name for c in quiet.checks if c.drifted]
    drifted = decision.decide(decision.mail_checks(reference.mail, [transform(f) for f in clean], PARAMS), {}, PARAMS)
    assert [c.name for c in drifted.checks if c.drifted] == [check]


def test_log_rows_without_the_message_run_the_checks_they_can(reference: decision.Reference) -> None:
    drawn = sample(240, 60, seed=5, generation=2)
    window = window_of(drawn, 5, with_text=False)
    window.mail = [md.MailFeatures.of_log_row(f.size, f.sender_domain, f.url_domains) for f in drawn.features]
    found = by_name(decision.run_checks(reference, window, PARAMS))
    ran = {name for name in MAIL_CHECKS if found[name].skipped is None}
    assert ran == {"descriptor:size", "unseen_sender_domain", "unseen_url_domain"}
    assert found["unseen_sender_domain"].drifted and found["unseen_url_domain"].drifted
    assert found["charset_mix"].skipped == "0 messages with the whole message < 100"
    assert found["descriptor:html_share"].skipped == "0 messages with the whole message < 100"
    # An e-mail log row's text_length is the raw message's: not comparable with the subject and body.
    assert found["descriptor:length"].skipped == "0 messages with text < 100"


def test_sms_log_rows_without_text_still_compare_their_length(reference: decision.Reference) -> None:
    sms_reference = dataclasses.replace(reference, channel="sms", mail=None)
    found = by_name(decision.run_checks(sms_reference, window_of(sample(240, 60, 6), 6, with_text=False), PARAMS))
    assert found["descriptor:length"].skipped is None
    assert not MAIL_CHECKS & {name for name in found if name != "descriptor:length"}


def test_a_window_with_few_linked_messages_skips_the_link_check(reference: decision.Reference) -> None:
    features = [dataclasses.replace(f, url_domains=()) for f in sample(240, 60, seed=7).features]
    features[:30] = [dataclasses.replace(f, url_domains=("docs.example.org",)) for f in features[:30]]
    assert reference.mail is not None
    found = {c.name: c for c in decision.mail_checks(reference.mail, features, PARAMS)}
    assert found["unseen_url_domain"].skipped == "30 messages with links < 100"
    assert found["unseen_sender_domain"].skipped is None


def test_an_email_profile_from_before_the_mail_descriptors(reference: decision.Reference) -> None:
    old = dataclasses.replace(reference, mail=None)
    found = by_name(decision.run_checks(old, window_of(sample(240, 60, 8), 8), PARAMS))
    for name in MAIL_CHECKS:
        assert "rebuild it with `dvc repro`" in str(found[name].skipped)
    assert found["vocabulary"].skipped is None  # the text checks still run


def test_mail_thresholds_default_until_params_carry_them() -> None:
    assert decision.MailThresholds.of(PARAMS) == decision.MailThresholds(0.05, 0.1, 0.01)


def test_share_and_category_checks() -> None:
    same = checks.share_check("s", "data", 30, 1000, 15, 500, 0.05)
    assert same.statistic == 0.0 and same.p_value == pytest.approx(1.0)
    moved = checks.share_check("s", "data", 30, 1000, 60, 500, 0.05)
    assert moved.effect_exceeded and moved.p_value is not None and moved.p_value < 1e-6
    counts = np.array([800.0, 150.0, 50.0])
    quiet = checks.category_check("c", "data", ["a", "b", "other"], counts, counts / 2, 0.1)
    assert quiet.statistic == pytest.approx(0.0, abs=1e-9) and not quiet.effect_exceeded
    assert quiet.details["reference_shares"] == pytest.approx([0.8, 0.15, 0.05])
    shifted = checks.category_check("c", "data", ["a", "b", "other"], counts, np.array([200.0, 250.0, 50.0]), 0.1)
    assert shifted.effect_exceeded and shifted.p_value is not None and shifted.p_value < 1e-9


# --------------------------------------------------------------------------- the report names its channel


def email_report(reference: decision.Reference) -> dict[str, Any]:
    result = decision.run_checks(reference, window_of(sample(240, 60, seed=9, generation=2), 9), PARAMS)
    return {
        "channel": "email",
        **result.as_dict(),
        "params": PARAMS.model_dump(mode="json"),
        "reference": {"profile": "models/email/reference_profile.json"},
    }


def test_summary_table_and_html_name_the_channel(reference: decision.Reference) -> None:
    report = email_report(reference)
    table = rendering.summary_table(report)
    assert table.splitlines()[0] == "channel: email"
    assert any(line.startswith("unseen_sender_domain") and line.endswith("DRIFT") for line in table.splitlines())
    page = rendering.render_html(report)
    assert "<title>Spam filter monitor report: e-mail channel</title>" in page
    assert "<tr><th>channel</th><td>email</td></tr>" in page
    figures = dict(re.findall(r"<h2>([^<]+)</h2><figure>(.*?)</figure>", page, flags=re.DOTALL))
    assert "size (log10 bytes)" in figures["Text descriptors"]  # the e-mail descriptors' histograms
    charset = figures["Charset mix"]
    ElementTree.fromstring(charset)
    assert ">other<" in charset and charset.count("<rect") >= 4
    assert "Most frequent sender domains never seen in training" in page
    assert "<td>chat.example.io</td>" in page


def test_github_output_names_the_email_channel(reference: decision.Reference) -> None:
    report = email_report(reference)
    lines = rendering.github_output(report).splitlines()
    assert lines[:2] == ["retrain_needed=true", "monitor_status=drift"]
    assert lines[3:5] == ["retrain_needed_email=true", "monitor_status_email=drift"]
    assert lines[5].startswith("retrain_reasons_email=") and lines[5].removeprefix("retrain_reasons_email=") == (
        lines[2].removeprefix("retrain_reasons=")
    )
    assert "unseen_sender_domain" in lines[5]
    assert len(lines) == 6


def test_github_output_of_sms_keeps_its_three_lines() -> None:
    quiet = {"channel": "sms", "retrain_needed": False, "status": "ok", "reasons": []}
    assert rendering.github_output(quiet) == "retrain_needed=false\nmonitor_status=ok\nretrain_reasons=\n"
    assert rendering.summary_table(quiet).splitlines()[0] == "channel: sms"


@pytest.mark.parametrize("content", [b"{not json", b"\xff\xfe garbage"])
def test_a_profile_that_is_not_json_is_a_data_error_naming_the_file(tmp_path: Any, content: bytes) -> None:
    from spamfilter.errors import DataError
    from spamfilter.monitoring.monitor import read_profile

    path = tmp_path / "reference_profile.json"
    path.write_bytes(content)
    with pytest.raises(DataError, match=r"reference_profile.json: not a reference profile \(invalid JSON"):
        read_profile(path, "email")
