"""Drift checks on the real corpus: each fires on its drift and stays quiet on resampled clean data."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from spamfilter.config import MonitorParams, Params, TrainParams
from spamfilter.data import corpus, feed
from spamfilter.errors import DataError
from spamfilter.modeling.pipeline import assemble, build_classifier, build_featurizer, predict_labels, spam_probability
from spamfilter.monitoring import checks, decision, descriptors, profile, statistics

PARAMS = MonitorParams()


@dataclass
class Setup:
    reference: decision.Reference
    profile: dict
    train: list[corpus.Message]
    test: list[corpus.Message]
    model: object


@pytest.fixture(scope="module")
def setup(shared_corpus: Path) -> Setup:
    dataset = corpus.deduplicate([corpus.parse_corpus(shared_corpus.read_bytes(), str(shared_corpus))])
    train, test = corpus.split(dataset.messages, 0.2, 42)
    texts, labels = corpus.texts_and_labels(train)
    featurizer = build_featurizer(Params().featurize.model_copy(update={"char_ngrams": False}))
    classifier = build_classifier(TrainParams(model="logreg")).fit(featurizer.fit_transform(texts), labels)
    model = assemble(featurizer, classifier)
    test_texts, truth = corpus.texts_and_labels(test)
    scores = spam_probability(model, test_texts)
    predicted = predict_labels(scores, 0.5)
    built = profile.build_profile(texts, labels, scores, truth, predicted, {"f1": 0.9}, 0.5)
    built = json.loads(json.dumps(built))  # exactly what the monitor reads back from disk
    return Setup(profile.reference_from_profile(built), built, train, test, model)


def window_of(setup: Setup, messages: list[corpus.Message], with_text: bool = True) -> decision.Window:
    texts = [m.text for m in messages]
    scores = spam_probability(setup.model, texts)
    return decision.Window(
        lengths=np.array([len(t) for t in texts], dtype=float),
        scores=scores,
        predicted=predict_labels(scores, setup.reference.threshold),
        texts=texts if with_text else None,
        truth=[m.label for m in messages],
    )


def fired(result: decision.MonitorResult) -> set[str]:
    return {check.name for check in result.checks if check.drifted}


@pytest.mark.real_data
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_clean_resampled_windows_stay_quiet(setup: Setup, seed: int) -> None:
    result = decision.run_checks(
        setup.reference, window_of(setup, feed.make_batch(setup.test, 500, "none", 0, seed)), PARAMS
    )
    assert fired(result) == set()
    assert result.retrain_needed is False
    assert result.status == "ok"
    assert not [c for c in result.checks if c.skipped], "a 500-message labelled window runs every check"


@pytest.mark.real_data
@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("spam_surge", {"predicted_spam_rate", "label_spam_rate", "score_distribution"}),
        ("new_campaign", {"vocabulary", "score_distribution", "label_spam_rate"}),
        ("length_shift", {"descriptor:length", "descriptor:tokens"}),
        ("vocab_shift", {"descriptor:oov_rate", "domain_classifier"}),
    ],
)
def test_each_drift_fires_its_checks(setup: Setup, mode: str, expected: set[str]) -> None:
    # Twice the moderate strength: the checks named must all fire, not only enough of them
    # (bench/monitor.py measures the detection rate at the moderate strength itself).
    batch = feed.make_batch(setup.test, 500, mode, min(1.0, 2 * feed.MODERATE_STRENGTH[mode]), seed=11)
    result = decision.run_checks(setup.reference, window_of(setup, batch), PARAMS)
    assert expected <= fired(result)
    assert result.retrain_needed is True
    assert len(result.reasons) == len(fired(result))
    assert any(reason.startswith(next(iter(sorted(expected)))) for reason in result.reasons)


@pytest.mark.real_data
def test_new_campaign_lists_its_unseen_terms(setup: Setup) -> None:
    batch = feed.make_batch(setup.test, 500, "new_campaign", 0.2, seed=5)
    result = decision.run_checks(setup.reference, window_of(setup, batch), PARAMS)
    vocabulary = next(c for c in result.checks if c.name == "vocabulary")
    unseen = {item["term"] for item in vocabulary.details["unseen_terms"]}
    assert unseen & {"parcel", "wallet", "airdrop", "evri", "suspend", "hmrc", "depot", "netflix", "paypal"}
    reason = next(r for r in result.reasons if r.startswith("vocabulary"))
    assert "new terms:" in reason


@pytest.mark.real_data
def test_quality_decay_fires_on_missed_spam(setup: Setup) -> None:
    window = window_of(setup, feed.make_batch(setup.test, 600, "none", 0, seed=4))
    spam_rows = [i for i, t in enumerate(window.truth) if t == "spam"]
    for i in spam_rows[: len(spam_rows) // 3]:  # the model now misses a third of the spam
        window.predicted[i] = "ham"
    result = decision.run_checks(setup.reference, window, PARAMS)
    assert {"quality:recall", "quality:f1"} <= fired(result)
    assert "quality:precision" not in fired(result)
    recall = next(c for c in result.checks if c.name == "quality:recall")
    assert recall.statistic > PARAMS.quality_tolerance.recall
    assert any(r.startswith("quality:recall") and "tolerance" in r for r in result.reasons)


@pytest.mark.real_data
def test_log_window_without_texts_runs_length_and_score_checks_only(setup: Setup) -> None:
    batch = feed.make_batch(setup.test, 300, "length_shift", 0.5, seed=2)
    window = window_of(setup, batch, with_text=False)
    window.truth = None
    result = decision.run_checks(setup.reference, window, PARAMS)
    ran = {c.name for c in result.checks if c.skipped is None}
    assert ran == {"descriptor:length", "predicted_spam_rate", "score_distribution"}
    assert "descriptor:length" in fired(result)
    skipped = {c.name: c.skipped for c in result.checks if c.skipped}
    assert "with text" in skipped["vocabulary"]
    assert "labelled" in skipped["quality:recall"]


@pytest.mark.real_data
def test_too_small_window_is_insufficient_data(setup: Setup) -> None:
    window = window_of(setup, setup.test[:40])
    result = decision.run_checks(setup.reference, window, PARAMS)
    assert result.status == "insufficient_data"
    assert result.retrain_needed is False
    assert result.checks == []
    assert "insufficient data" in result.message
    assert "40" in result.message


@pytest.mark.real_data
def test_retrain_on_limits_the_decision_not_the_detection(setup: Setup) -> None:
    batch = feed.make_batch(setup.test, 500, "spam_surge", 0.3, seed=3)
    params = PARAMS.model_copy(update={"retrain_on": ["quality"]})
    result = decision.run_checks(setup.reference, window_of(setup, batch), params)
    assert "predicted_spam_rate" in fired(result)
    assert result.status == "drift"
    assert result.retrain_needed is False
    assert result.reasons == []


@pytest.mark.real_data
def test_duplicated_messages_do_not_fool_the_domain_classifier(setup: Setup) -> None:
    # Clean traffic in which every message arrives three times: copies in different folds would be
    # memorised and look like drift unless each side is de-duplicated first.
    texts = [m.text for m in setup.test[:300]] * 3
    check = checks.domain_classifier_check(setup.reference.texts, texts, PARAMS)
    assert check.details["per_side"] == 300
    assert check.statistic < PARAMS.domain_auc
    assert decision.decide([check], {}, PARAMS).retrain_needed is False
    few = checks.domain_classifier_check(setup.reference.texts, texts[:40] * 5, PARAMS)
    assert few.skipped == "40 distinct texts per side < 50"


@pytest.mark.real_data
def test_reference_oov_rate_is_leave_one_out(setup: Setup) -> None:
    """Training messages measured against a vocabulary that contains them would always look in-vocabulary."""
    held_out = descriptors.descriptors(descriptors.tokenize([m.text for m in setup.test]), setup.reference.vocabulary)
    reference_mean = setup.reference.descriptors["oov_rate"].mean()
    assert reference_mean > 0.02
    assert abs(held_out["oov_rate"].mean() - reference_mean) < 0.02


def test_effect_threshold_stops_significant_but_negligible_shifts() -> None:
    rng = np.random.default_rng(0)
    reference, current = rng.normal(0, 1, 50_000), rng.normal(0.05, 1, 50_000)
    check = checks.descriptor_check("length", reference, current, threshold=0.1)
    assert check.p_value < 1e-6
    result = decision.decide([check], {}, PARAMS)
    assert check.drifted is False
    assert result.retrain_needed is False


def test_p_value_corrections() -> None:
    p = [0.01, 0.04, 0.03, 0.5]
    assert statistics.adjust_p_values(p, "bonferroni") == pytest.approx([0.04, 0.16, 0.12, 1.0])
    assert statistics.adjust_p_values(p, "holm") == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert statistics.adjust_p_values(p, "bh") == pytest.approx([0.04, 0.05333333, 0.05333333, 0.5])
    assert statistics.adjust_p_values(p, "none") == p
    assert statistics.adjust_p_values([], "holm") == []
    with pytest.raises(ValueError, match="unknown correction"):
        statistics.adjust_p_values(p, "sidak")


def test_distances() -> None:
    assert statistics.psi(np.array([10, 20, 30]), np.array([1, 2, 3])) == pytest.approx(0.0)
    assert statistics.psi(np.array([10, 20, 30]), np.array([30, 20, 10])) > 0.5
    assert statistics.js_distances(np.array([1, 2, 3]), np.array([2, 4, 6]))[0] == pytest.approx(0.0, abs=1e-7)
    assert statistics.js_distances(np.array([1, 0]), np.array([0, 1]))[0] == pytest.approx(1.0)
    assert statistics.normed_wasserstein(np.array([0.0, 2.0]), np.array([1.0, 3.0])) == pytest.approx(1.0)


def test_descriptors_of_a_message() -> None:
    tokenized = descriptors.tokenize(["WIN £100 now at www.win.com", ""])
    values = descriptors.descriptors(tokenized, {"win": 5, "now": 5, "at": 5})
    assert values["length"].tolist() == [27.0, 0.0]
    assert values["tokens"][0] == 5  # win moneytoken now at urltoken
    assert values["currency_share"][0] == pytest.approx(1 / 5)
    assert values["url_share"][0] == pytest.approx(1 / 5)
    assert values["uppercase_share"][0] == pytest.approx(3 / 17)  # W I N of 17 letters
    assert values["oov_rate"][0] == 0.0
    assert values["tokens"][1] == 0 and values["oov_rate"][1] == 0.0
    unknown = descriptors.descriptors(tokenized, {"win": 1, "now": 5, "at": 5}, leave_one_out=True)
    assert unknown["oov_rate"][0] == pytest.approx(1 / 3)


def test_malformed_profile_names_the_stage() -> None:
    with pytest.raises(DataError, match=r"evaluate.*dvc repro"):
        profile.reference_from_profile({"schema_version": profile.SCHEMA_VERSION, "texts": {}}, "p.json")
    with pytest.raises(DataError, match="schema_version"):
        profile.reference_from_profile({"schema_version": 99}, "p.json")
