"""The out-of-core model goes through MLflow as the others do: logged and registered by the training run's
own function, loaded back by the registry loader and by MLflow's pyfunc, scoring exactly as before."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from api.model_holder import channel_scorer
from spamfilter.config import FeaturizeParams
from spamfilter.modeling import channels, streaming
from spamfilter.modeling.metrics import OBVIOUS_HAM, OBVIOUS_SPAM
from spamfilter.modeling.pipeline import spam_probability
from spamfilter.registry import loading, tracking
from tests.conftest import make_messages
from tests.model.registry_helpers import store_settings

MESSAGES = make_messages(n_ham=150, n_spam=50)
HELD_OUT = [text for _, text in make_messages(n_ham=60, n_spam=20, seed=99)]

pytestmark = pytest.mark.slow


def test_streaming_model_registers_and_loads_through_pyfunc(tmp_path: Path) -> None:
    params = streaming.StreamingSgdParams(n_features=2**12, chunk_rows=40, min_examples=2_000)
    model = streaming.build_streaming_model(FeaturizeParams(), params, 0.5, 42)
    chunks = [
        ([text for _, text in MESSAGES[start : start + 40]], [label for label, _ in MESSAGES[start : start + 40]])
        for start in range(0, len(MESSAGES), 40)
    ]
    streaming.fit_streaming(model, chunks, ["ham", "spam"])
    settings = store_settings(tmp_path, registered_model="streaming")
    version = tracking.log_training_run(
        settings,
        model,
        params={
            "train.model": "streaming_sgd",
            **{f"train.streaming_sgd.{k}": v for k, v in params.model_dump().items()},
        },
        tags={"channel": "sms"},
        input_example=channels.input_example("sms"),
        input_column=channels.input_column("sms"),
    )
    assert version.version == "1"

    texts = [*HELD_OUT, *OBVIOUS_SPAM, *OBVIOUS_HAM, "", "ÜNÏCÖDÉ £££ 📱"]
    expected = spam_probability(model, texts)
    loaded = loading.load_pipeline("models:/streaming/1", settings)
    np.testing.assert_array_equal(spam_probability(loaded, texts), expected)
    scorer, _ = channel_scorer(loaded, "sms")
    np.testing.assert_array_equal(scorer(texts), expected)

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    pyfunc = mlflow.pyfunc.load_model("models:/streaming/1")
    assert list(pyfunc.predict(pd.DataFrame({"text": texts}))) == list(model.predict(texts))
    assert list(model.predict(list(OBVIOUS_SPAM))) == ["spam"] * len(OBVIOUS_SPAM)
