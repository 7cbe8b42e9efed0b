"""The default e-mail model does not read how a message travelled or how the corpus was collected: its
probability is the same with and without every Received, Delivered-To, Return-Path, List-*, X-*,
Precedence and Errors-To header field.

In the SpamAssassin corpus those fields separate ham (mostly mailing-list traffic) from spam by how the
messages were collected; here they are made to separate the classes perfectly in the training data, so a
model that read them would learn them. A model told to read them (`header_fields`) does move: the check
can fail."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline

from spamfilter.config import DEFAULT_LABEL_FOLDERS
from spamfilter.data.mail_corpus import read_mail_corpus
from spamfilter.modeling.email import (
    EmailFeaturizeParams,
    EmailTrainParams,
    build_email_model,
    with_collection_headers,
    without_collection_headers,
)
from spamfilter.modeling.pipeline import spam_probability
from tests.generated_mail import make_corpus

SHARED_ARCHIVE = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "datasets-spam-assassin-0.2.3.tgz"
COLLECTION_FIELDS = ("received", "delivered-to", "return-path", "list-id", "list-unsubscribe", "x-beenthere")
COLLECTION_FIELDS += ("x-mailer", "precedence", "errors-to")


def collected(raw: bytes, label: str, rng: random.Random) -> bytes:
    """The message as the corpus's collector would have stored it: ham through a mailing list (List-*,
    X-Beenthere, Precedence, Errors-To, the list's relay), spam straight from a bulk mailer."""
    if label == "ham":
        fields = (
            f"Received: from lists.example.org (lists.example.org [192.0.2.{rng.randrange(1, 250)}])\n"
            "\tby collector.example.net (Postfix) with ESMTP id 11AA2\n"
            "Delivered-To: collector@example.net\n"
            "Return-Path: <users-admin@lists.example.org>\n"
            "List-Id: Example users <users.lists.example.org>\n"
            "List-Unsubscribe: <mailto:users-request@lists.example.org?subject=unsubscribe>\n"
            "X-Beenthere: users@lists.example.org\n"
            "Precedence: bulk\n"
            "Errors-To: users-admin@lists.example.org\n"
        )
    else:
        fields = (
            f"Received: from unknown (HELO bulk{rng.randrange(100)}.example.biz) (203.0.113.{rng.randrange(1, 250)})\n"
            "\tby collector.example.net with SMTP id 99ZZ\n"
            "Delivered-To: collector@example.net\n"
            "Return-Path: <bounce@bulk.example.biz>\n"
            "X-Mailer: Bulk Mailer Pro 5.0\n"
        )
    return fields.encode("ascii") + raw


@pytest.fixture(scope="module")
def labelled() -> tuple[list[bytes], list[str], list[bytes], list[str]]:
    """Generated messages with their collection headers: a training part and a test part."""
    rng = random.Random(3)
    train = [(label, collected(raw, label, rng)) for label, raw in make_corpus(n_ham=90, n_spam=45, seed=21)]
    test = [(label, collected(raw, label, rng)) for label, raw in make_corpus(n_ham=40, n_spam=20, seed=22)]
    return [r for _, r in train], [label for label, _ in train], [r for _, r in test], [label for label, _ in test]


def fit(featurize: EmailFeaturizeParams, raws: list[bytes], labels: list[str]) -> Pipeline:
    return build_email_model(featurize, EmailTrainParams()).fit(raws, labels)


def test_collection_headers_separate_the_generated_classes(
    labelled: tuple[list[bytes], list[str], list[bytes], list[str]],
) -> None:
    # The premise: a model reading them could learn the labels from them alone.
    train, labels, _, _ = labelled
    assert all((b"List-Id:" in raw) == (label == "ham") for raw, label in zip(train, labels, strict=True))
    assert all((b"X-Mailer:" in raw) == (label == "spam") for raw, label in zip(train, labels, strict=True))


def test_default_model_gives_the_same_probability_without_collection_headers(
    labelled: tuple[list[bytes], list[str], list[bytes], list[str]],
) -> None:
    train, labels, test, _ = labelled
    model = fit(EmailFeaturizeParams(), train, labels)
    stripped = [without_collection_headers(raw) for raw in test]
    assert all(stripped_raw != raw for stripped_raw, raw in zip(stripped, test, strict=True))
    restamped = [with_collection_headers(raw) for raw in stripped]  # another relay's and list's fields
    # The features themselves are the same, entry for entry: no classifier on them could tell.
    features = model.named_steps["features"]
    expected_features = features.transform(test).tocsr()
    for other in (stripped, restamped):
        got = features.transform(other).tocsr()
        assert np.array_equal(got.indptr, expected_features.indptr)
        assert np.array_equal(got.indices, expected_features.indices)
        assert np.array_equal(got.data, expected_features.data)
        assert np.array_equal(spam_probability(model, other), spam_probability(model, test))


def test_a_model_told_to_read_them_does_move(
    labelled: tuple[list[bytes], list[str], list[bytes], list[str]],
) -> None:
    train, labels, test, _ = labelled
    default = EmailFeaturizeParams()
    reading = EmailFeaturizeParams(header_fields=(*default.header_fields, *COLLECTION_FIELDS))
    # The averaging model: its probabilities are continuous (the stacked model's trees, on separable
    # generated mail, give two values), so a moved score shows.
    model = build_email_model(reading, EmailTrainParams(model="ensemble")).fit(train, labels)
    stripped = [without_collection_headers(raw) for raw in test]
    features = model.named_steps["features"]
    assert (features.transform(test) != features.transform(stripped)).sum() > 0
    with_fields = spam_probability(model, test)
    without = spam_probability(model, stripped)
    assert (with_fields != without).mean() > 0.9


@pytest.mark.real_data
@pytest.mark.slow
def test_default_model_on_real_messages_ignores_collection_headers() -> None:
    if not SHARED_ARCHIVE.is_file():
        pytest.skip(f"{SHARED_ARCHIVE} not present")
    corpus = read_mail_corpus(SHARED_ARCHIVE, DEFAULT_LABEL_FOLDERS, 1_048_576)
    raws = [message.raw for message in corpus.messages]
    labels = [message.label for message in corpus.messages]
    train_raws, rest_raws, train_labels, _ = train_test_split(
        raws, labels, train_size=1200, stratify=labels, random_state=42
    )
    model = fit(EmailFeaturizeParams(), train_raws, train_labels)
    checked = random.Random(42).sample(rest_raws, 2000)
    stripped = [without_collection_headers(raw) for raw in checked]
    changed = sum(stripped_raw != raw for stripped_raw, raw in zip(stripped, checked, strict=True))
    assert changed >= 1990, "nearly every real message carries Received or List-* fields: the check must see them"
    expected = spam_probability(model, checked)
    moved = np.flatnonzero(spam_probability(model, stripped) != expected)
    assert moved.size == 0, f"{moved.size} of {len(checked)} real messages scored differently without them"
