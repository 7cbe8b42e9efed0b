"""The model of each channel: one entry point that builds the channel's featurizer and classifier from
its params, so the stages stay the same for SMS and e-mail."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sklearn.base import ClassifierMixin
from sklearn.pipeline import Pipeline

from spamfilter.config import Channel, ChannelParams, EmailParams
from spamfilter.modeling import metrics, pipeline
from spamfilter.modeling.metrics import OBVIOUS_HAM, OBVIOUS_SPAM


def build_featurizer(params: ChannelParams) -> Pipeline:
    """Raw input (SMS text, or a raw RFC 822 message) → the channel's feature matrix."""
    if isinstance(params, EmailParams):
        from spamfilter.modeling import email  # the e-mail model pulls in the mail parser: only for e-mail

        return email.build_email_featurizer(params.featurize, params.ingest.limits)
    return pipeline.build_featurizer(params.featurize)


def build_classifier(params: ChannelParams) -> ClassifierMixin:
    """The classifier named by the channel's `train.model`, with its threshold."""
    if isinstance(params, EmailParams):
        from spamfilter.modeling import email

        return email.build_email_classifier(params.train)
    return pipeline.build_classifier(params.train)


def input_example(channel: Channel) -> list[str]:
    """Two inputs, spam then ham, to log with the MLflow model: its signature and input example."""
    if channel == "email":
        from spamfilter.modeling import email

        return list(email.EXAMPLE_MESSAGES)
    return [OBVIOUS_SPAM[0], OBVIOUS_HAM[0]]


def input_column(channel: Channel) -> str:
    """The column of a DataFrame the channel's model scores (MLflow pyfunc): texts or raw messages."""
    return "message" if channel == "email" else "text"


def behavioural_checks(channel: Channel, model: Any, inputs: Sequence[Any]) -> list[metrics.BehaviouralResult]:
    """The channel's behavioural checks of a fitted model on held-out inputs."""

    def predict(batch: list[Any]) -> list[str]:
        return [str(label) for label in model.predict(batch)]

    if channel == "email":
        from spamfilter.modeling import email

        return email.behavioural_checks(inputs, predict)
    return metrics.behavioural_checks(inputs, predict)


def monitored_texts(channel: Channel, inputs: Sequence[Any]) -> list[str]:
    """The texts the monitor's reference profile describes: SMS texts, or each e-mail's subject and body."""
    if channel == "email":
        from spamfilter.modeling import email

        return email.monitored_texts(inputs)
    return [str(text) for text in inputs]
