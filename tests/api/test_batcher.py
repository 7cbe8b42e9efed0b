"""The micro-batcher (`api.batcher.MicroBatcher`), the one piece of custom concurrency behind /predict.

Directly, on an event loop with real loaded models (the session bundle and a naive Bayes one): requests
that arrive together are scored in one call per model, a batch is split at `max_batch`, every caller gets
the score of its own text, and a failed call reaches exactly the callers in it. Then end to end: many
concurrent /predict requests with distinct texts, each answer checked against the in-process score of
its own text by the model version it names."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from api.batcher import MicroBatcher
from api.model_holder import LoadedModel, load_from_source
from spamfilter.config import TrainParams
from spamfilter.modeling.pipeline import spam_probability
from tests.api.conftest import Server, train_model, write_bundle
from tests.conftest import make_messages


def texts_with_distinct_scores(model: Any, n: int, seed: int) -> list[str]:
    """`n` texts whose scores by `model` all differ, so an answer given to the wrong request shows.
    (Generated messages differ mostly in numbers, which the model sees as one placeholder: pairs of
    them differ in words too.)"""
    messages = [text for _, text in make_messages(n_ham=3 * n, n_spam=n, seed=seed)]
    candidates = [f"{a} {b}" for a, b in zip(messages[::2], messages[1::2], strict=False)] + messages
    scores = spam_probability(model, candidates)
    chosen: dict[float, str] = {}
    for text, score in zip(candidates, scores, strict=True):
        chosen.setdefault(round(float(score), 9), text)
    assert len(chosen) >= n, f"only {len(chosen)} distinct scores"
    return list(chosen.values())[:n]


class ScoringBrokeError(RuntimeError):
    pass


@dataclasses.dataclass
class Recorded:
    """A loaded model whose scorer is the real one, recording each call's texts (and failing on request)."""

    loaded: LoadedModel
    calls: list[list[str]]


def recorded(loaded: LoadedModel, fail_on: str | None = None) -> Recorded:
    calls: list[list[str]] = []

    def score(texts: Sequence[str]) -> np.ndarray:
        calls.append(list(texts))
        if fail_on is not None and any(fail_on in text for text in texts):
            raise ScoringBrokeError(f"cannot score a batch holding {fail_on!r}")
        return loaded.score(texts)

    return Recorded(dataclasses.replace(loaded, score=score), calls)


@pytest.fixture(scope="module")
def svm(bundle_dir: Path) -> LoadedModel:
    return load_from_source(str(bundle_dir))


@pytest.fixture(scope="module")
def texts(default_model: Any) -> list[str]:
    return texts_with_distinct_scores(default_model, 12, seed=21)


@pytest.fixture(scope="module")
def naive_bayes(tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    bundle = write_bundle(tmp_path_factory.mktemp("nb") / "bundle", train_model(TrainParams(model="mnb")), "2")
    return load_from_source(str(bundle))


def own_scores(loaded: LoadedModel, texts: Sequence[str]) -> list[float]:
    """Each text scored alone, by the full scikit-learn pipeline (not the lean scorer the batcher calls)."""
    return [float(spam_probability(loaded.model, [text])[0]) for text in texts]


def run_together(batcher: MicroBatcher, requests: Sequence[tuple[LoadedModel, str]]) -> list[Any]:
    """Submit the requests in the same loop turn, as requests whose bytes arrived together are."""

    async def main() -> list[Any]:
        return await asyncio.gather(*(batcher.score(loaded, text) for loaded, text in requests), return_exceptions=True)

    return asyncio.run(main())


def test_requests_arriving_together_share_one_call_and_each_gets_its_own_score(
    svm: LoadedModel, texts: list[str]
) -> None:
    model = recorded(svm)
    sizes: list[float] = []
    batcher = MicroBatcher(max_batch=64, on_batch=sizes.append)
    results = run_together(batcher, [(model.loaded, text) for text in texts])
    assert model.calls == [texts]
    assert results == pytest.approx(own_scores(svm, texts), abs=1e-12)
    assert (batcher.batches, batcher.items, sizes) == (1, 12, [12])


def test_a_lone_request_is_scored_alone(svm: LoadedModel, texts: list[str]) -> None:
    model = recorded(svm)
    batcher = MicroBatcher(max_batch=64)
    assert run_together(batcher, [(model.loaded, texts[0])]) == pytest.approx(own_scores(svm, texts[:1]), abs=1e-12)
    assert model.calls == [[texts[0]]]


def test_requests_are_grouped_by_the_model_they_were_admitted_with(
    svm: LoadedModel, naive_bayes: LoadedModel, texts: list[str]
) -> None:
    """During a hot swap, requests in one batch hold different models: each is scored by its own."""
    old, new = recorded(svm), recorded(naive_bayes)
    requests = [(old.loaded if i % 3 else new.loaded, text) for i, text in enumerate(texts)]
    results = run_together(MicroBatcher(max_batch=64), requests)
    assert old.calls == [[text for i, text in enumerate(texts) if i % 3]]
    assert new.calls == [[text for i, text in enumerate(texts) if not i % 3]]
    expected = [own_scores(naive_bayes if loaded is new.loaded else svm, [text])[0] for loaded, text in requests]
    assert results == pytest.approx(expected, abs=1e-12)
    assert own_scores(svm, texts[:1]) != pytest.approx(own_scores(naive_bayes, texts[:1]), abs=1e-6)


def test_a_batch_is_split_at_max_batch(svm: LoadedModel, texts: list[str]) -> None:
    model = recorded(svm)
    sizes: list[float] = []
    batcher = MicroBatcher(max_batch=4, on_batch=sizes.append)
    texts = texts[:10]
    results = run_together(batcher, [(model.loaded, text) for text in texts])
    assert model.calls == [texts[0:4], texts[4:8], texts[8:10]]
    assert sizes == [4, 4, 2] and (batcher.batches, batcher.items) == (3, 10)
    assert results == pytest.approx(own_scores(svm, texts), abs=1e-12)


def test_a_failed_call_reaches_exactly_its_callers(
    svm: LoadedModel, naive_bayes: LoadedModel, texts: list[str]
) -> None:
    """A failing call among others of the same flush (another model's, the same model's next batch):
    only the callers in it get the error."""
    failing, healthy = recorded(svm, fail_on="BOOM"), recorded(naive_bayes)
    boom = f"{texts[2]} BOOM"
    svm_call, nb_call = failing.loaded, healthy.loaded
    order = [svm_call, nb_call, svm_call, nb_call, svm_call, svm_call, nb_call, svm_call]
    requests = [(loaded, boom if i == 2 else texts[i]) for i, loaded in enumerate(order)]
    batcher = MicroBatcher(max_batch=4)
    results = run_together(batcher, requests)
    # Slices of 4 in arrival order, each grouped by model: the first slice's svm call holds BOOM.
    assert failing.calls == [[texts[0], boom], [texts[4], texts[5], texts[7]]]
    assert healthy.calls == [[texts[1], texts[3]], [texts[6]]]
    assert [isinstance(result, ScoringBrokeError) for result in results] == [i in (0, 2) for i in range(8)]
    for i in (1, 3, 4, 5, 6, 7):
        loaded, text = requests[i]
        assert results[i] == pytest.approx(own_scores(naive_bayes if loaded is nb_call else svm, [text])[0], abs=1e-12)
    assert (batcher.batches, batcher.items) == (3, 6), "the failed call is not counted as scored"


def test_a_caller_that_went_away_does_not_stop_the_others(svm: LoadedModel, texts: list[str]) -> None:
    model = recorded(svm)
    batcher = MicroBatcher(max_batch=64)
    texts = texts[:5]

    async def main() -> list[Any]:
        tasks = [asyncio.ensure_future(batcher.score(model.loaded, text)) for text in texts]
        await asyncio.sleep(0)  # every request is queued, the flush not yet run
        tasks[1].cancel()  # the client disconnected
        return await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), timeout=30)

    results = asyncio.run(main())
    assert isinstance(results[1], asyncio.CancelledError)
    kept = [0, 2, 3, 4]
    assert [results[i] for i in kept] == pytest.approx(own_scores(svm, [texts[i] for i in kept]), abs=1e-12)


def test_concurrent_requests_with_distinct_texts_each_get_their_own_score(
    bundle_server: Server, default_model: Any
) -> None:
    """Hundreds of /predict requests in flight at once over many connections, each with its own text."""
    texts = texts_with_distinct_scores(default_model, 300, seed=33)

    async def main() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=48)
        async with httpx.AsyncClient(base_url=bundle_server.url, timeout=60, limits=limits) as client:
            return await asyncio.gather(
                *(client.post("/predict", json={"text": text}, headers={"X-API-Key": "test-key"}) for text in texts)
            )

    before = micro_batches(bundle_server)
    responses = asyncio.run(main())
    assert [r.status_code for r in responses] == [200] * len(texts), next(
        r.text for r in responses if r.status_code != 200
    )
    answers = [r.json() for r in responses]
    assert {answer["model_version"] for answer in answers} == {"1"}
    expected = spam_probability(default_model, texts)
    assert [answer["spam_probability"] for answer in answers] == pytest.approx(expected.tolist(), abs=1e-12)
    after = micro_batches(bundle_server)
    assert after["items"] - before["items"] == len(texts)
    assert after["calls"] - before["calls"] < len(texts), "some requests were scored together"


def micro_batches(server: Server) -> dict[str, float]:
    """Model calls and texts scored by the micro-batcher, summed over the server's workers."""
    from prometheus_client.parser import text_string_to_metric_families

    exposition = httpx.get(f"{server.url}/metrics", timeout=30).text
    found = {"calls": 0.0, "items": 0.0}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == "spam_api_micro_batch_size_count":
                found["calls"] += sample.value
            elif sample.name == "spam_api_micro_batch_size_sum":
                found["items"] += sample.value
    return found
