"""Models pickled before the package was split into sub-packages still load and score the same.

Registered versions and serving bundles made by earlier code pickle `spamfilter.text.TextNormalizer`
and `spamfilter.text.WordAnalyzer` by import path; rollback to such a version must keep working. The
test pickles a model under that old path (the classes' `__module__` set to it while pickling, as the
old code had it), checks the pickle really names the old path, then loads it in a fresh interpreter
through the serving loader and compares every probability.
"""

from __future__ import annotations

import contextlib
import json
import pickle
import pickletools
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import joblib
import numpy as np
import pytest

from spamfilter.config import FeaturizeParams, TrainParams
from spamfilter.modeling import text
from spamfilter.modeling.pipeline import assemble, build_classifier, build_featurizer, spam_probability
from tests.conftest import make_messages

OLD_PATH = "spamfilter.text"
MOVED = (text.TextNormalizer, text.WordAnalyzer)


@contextlib.contextmanager
def pickled_under_old_path() -> Iterator[None]:
    saved = [cls.__module__ for cls in MOVED]
    for cls in MOVED:
        cls.__module__ = OLD_PATH
    try:
        yield
    finally:
        for cls, module in zip(MOVED, saved, strict=True):
            cls.__module__ = module


def pickled_module_names(payload: bytes) -> set[str]:
    return {str(arg) for _, arg, _ in pickletools.genops(payload) if isinstance(arg, str) and arg.startswith("spam")}


@pytest.fixture(scope="module")
def old_model() -> tuple[object, list[str]]:
    messages = make_messages(n_ham=120, n_spam=40, seed=7)
    labels = [label for label, _ in messages]
    texts = [text for _, text in messages]
    featurizer = build_featurizer(FeaturizeParams())
    model = assemble(
        featurizer, build_classifier(TrainParams(model="logreg")).fit(featurizer.fit_transform(texts), labels)
    )
    return model, texts


def load_in_fresh_interpreter(source: Path, texts_file: Path) -> list[float]:
    script = (
        "import json, sys\n"
        "from spamfilter.registry.loading import load_pipeline\n"
        "from spamfilter.modeling.pipeline import spam_probability\n"
        "model = load_pipeline(sys.argv[1])\n"
        "texts = json.loads(open(sys.argv[2]).read())\n"
        "print(json.dumps([float(p) for p in spam_probability(model, texts)]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(source), str(texts_file)], capture_output=True, text=True, check=True
    )
    return list(json.loads(out.stdout))


def test_a_joblib_model_pickled_under_the_old_path_scores_the_same(
    old_model: tuple[object, list[str]], tmp_path: Path
) -> None:
    model, texts = old_model
    path = tmp_path / "model.joblib"
    with pickled_under_old_path():
        joblib.dump(model, path)
        # joblib writes numpy buffers raw after the pickle opcodes: read the names from a plain pickle.
        names = pickled_module_names(pickle.dumps(model))
    assert OLD_PATH in names and not any(name.startswith("spamfilter.modeling") for name in names)
    (tmp_path / "texts.json").write_text(json.dumps(texts))
    loaded = load_in_fresh_interpreter(path, tmp_path / "texts.json")
    np.testing.assert_array_equal(loaded, spam_probability(model, texts))


def test_a_bundle_exported_under_the_old_path_loads_and_scores_the_same(
    old_model: tuple[object, list[str]], tmp_path: Path
) -> None:
    from spamfilter.registry import tracking

    model, texts = old_model
    bundle = tmp_path / "bundle"
    with pickled_under_old_path():
        tracking.save_model(model, bundle / "model", texts[:2])
    names = pickled_module_names((bundle / "model" / "model.pkl").read_bytes())
    assert OLD_PATH in names and not any(name.startswith("spamfilter.modeling") for name in names)
    (tmp_path / "texts.json").write_text(json.dumps(texts))
    loaded = load_in_fresh_interpreter(bundle, tmp_path / "texts.json")
    np.testing.assert_array_equal(loaded, spam_probability(model, texts))


def test_the_old_path_names_the_same_classes() -> None:
    import spamfilter.text as old

    assert old.TextNormalizer is text.TextNormalizer
    assert old.WordAnalyzer is text.WordAnalyzer
