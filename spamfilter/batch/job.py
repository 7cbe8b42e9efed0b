"""One batch-scoring run: the input opened and checked, the registered model version resolved and loaded,
every chunk scored by the engine asked for, the Parquet output written and renamed into place.

Engines:
* `local`: in this process, with the scorer the API uses (`spamfilter.modeling.scoring.compile_scorer`
  for SMS, bit-for-bit the model's probabilities; the model's own pipeline for e-mail), one chunk at a
  time, so memory stays flat whatever the input's size (e-mail trees and archives excepted: see `inputs`).
* `spark`: the same chunks scored in Spark by the version's MLflow model (`spamfilter.batch.spark`).

Labels come from P(spam) and the model's own threshold in both, so the engines agree wherever their
probabilities do.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from tqdm import tqdm

from spamfilter.batch import inputs, output
from spamfilter.batch.inputs import Chunk, CorpusReader, OnBadRow
from spamfilter.config import Channel, Settings
from spamfilter.data.corpus import BadRow
from spamfilter.errors import DataError, ModelUnavailableError, SpamfilterError
from spamfilter.labels import LABELS, SPAM
from spamfilter.modeling.pipeline import model_threshold, predict_labels, spam_probability
from spamfilter.modeling.scoring import compile_scorer
from spamfilter.registry.versions import CHANNEL_TAG, ModelVersion

Engine = Literal["local", "spark"]
# P(spam) of each model input: SMS texts, or raw e-mails (bytes).
ChannelScorer = Callable[[Sequence[Any]], np.ndarray]


@dataclass(frozen=True)
class ScoreRequest:
    """What to score, with what, and where to write it."""

    channel: Channel
    input: Path
    out: Path
    engine: Engine = "local"
    model_ref: str = "champion"  # an alias, or a version number
    master: str | None = None  # Spark master (default local[*]); SPARK_REMOTE selects Spark Connect instead
    on_bad_row: OnBadRow = "fail"
    chunk_rows: int | None = None  # default: 10,000 (local), 100,000 (spark)
    mail_max_bytes: int = inputs.DEFAULT_MAIL_MAX_BYTES
    progress: bool = True  # a progress bar on stderr when it is a terminal


@dataclass(frozen=True)
class ScoreSummary:
    """What a run did."""

    out: Path
    rows: int
    spam: int
    model: ModelVersion
    engine: Engine
    scorer: str  # lean, pipeline, spark_udf
    input_format: str
    load_seconds: float  # opening the input, loading the model, starting the engine
    score_seconds: float  # reading, scoring and writing every chunk
    skipped: int = 0
    first_skipped: list[BadRow] = field(default_factory=list)

    @property
    def rate(self) -> float:
        """Messages per second while scoring (reading, scoring, writing; set-up excluded)."""
        return self.rows / self.score_seconds if self.score_seconds > 0 else 0.0

    def render(self) -> str:
        lines = [
            f"{self.out}: {self.rows:,} messages ({self.spam:,} spam) scored by {self.model.name} "
            f"v{self.model.version} ({self.engine} engine, {self.scorer} scorer; input {self.input_format}) "
            f"in {self.score_seconds:.1f} s ({self.rate:,.0f} messages/s) after {self.load_seconds:.1f} s of set-up"
        ]
        if self.skipped:
            lines.append(f"skipped {self.skipped:,} bad rows; the first: {self.first_skipped[0]}")
        return "\n".join(lines)


@dataclass(frozen=True)
class ScoringModel:
    """A registered version, loaded: the native pipeline and what labels its probabilities."""

    version: ModelVersion
    pipeline: Any
    threshold: float

    @property
    def spam_index(self) -> int:
        return list(self.pipeline.classes_).index(SPAM)


def load_model(settings: Settings, channel: Channel, ref: str) -> ScoringModel:
    """The version of the channel's registered model that `ref` (an alias or a version number) names now,
    loaded. RegistryError when there is none; ModelUnavailableError for a model of another channel."""
    from spamfilter.registry import tracking  # imports mlflow: seconds, so only once the input is known good

    found = tracking.get_version(settings, ref)
    described = tracking.registered_version(found.uri, settings)
    tagged = described.lineage.get(CHANNEL_TAG, "sms")
    if tagged != channel:
        raise ModelUnavailableError(
            f"{found.uri} ({ref}) is a model of the {tagged} channel, not of {channel}; check --channel"
        )
    pipeline = tracking.load_version(settings, described)
    if tuple(pipeline.classes_) != LABELS:
        raise ModelUnavailableError(
            f"{found.uri}: model classes are {list(pipeline.classes_)}, expected {list(LABELS)}"
        )
    return ScoringModel(described, pipeline, model_threshold(pipeline))


def channel_scorer(model: Any, channel: Channel) -> tuple[ChannelScorer, str]:
    """The scorer the API uses for a channel's model, and its name: for SMS the lean scorer when it reproduces
    the model exactly; for raw e-mails the model's own pipeline (parse, features, classifier)."""
    if channel == "sms":
        return compile_scorer(model)

    def pipeline(messages: Sequence[Any]) -> np.ndarray:
        return spam_probability(model, list(messages))

    return pipeline, "pipeline"


def _progress(reader: CorpusReader, request: ScoreRequest) -> tqdm[Any]:
    """A progress bar on stderr, counting messages (of a known total for Parquet); off when stderr is not a
    terminal or the request says so."""
    return tqdm(
        total=reader.total,
        unit=" msg",
        unit_scale=True,
        desc="scoring",
        file=sys.stderr,
        disable=not (request.progress and sys.stderr.isatty()),
    )


def score_corpus(request: ScoreRequest, settings: Settings) -> ScoreSummary:
    """Score every message of `request.input` with the channel's registered model version and write the
    Parquet output (see `spamfilter.batch.output`). Expected failures (input, model, engine) raise a
    SpamfilterError naming what and where; nothing is left at `request.out` unless the run completes."""
    started = time.perf_counter()
    chunk_rows = inputs.DEFAULT_CHUNK_ROWS
    if request.engine == "spark":
        from spamfilter.batch import spark

        spark.preflight(request.master)  # fail fast, before the model loads, when Spark cannot run
        chunk_rows = spark.DEFAULT_CHUNK_ROWS
    reader = CorpusReader(
        request.input,
        request.channel,
        on_bad_row=request.on_bad_row,
        chunk_rows=request.chunk_rows or chunk_rows,
        mail_max_bytes=request.mail_max_bytes,
    )
    model = load_model(settings.for_channel(request.channel), request.channel, request.model_ref)
    with contextlib.ExitStack() as engine:
        if request.engine == "spark":
            score, scorer = _spark_scorer(engine, request, settings, model), "spark_udf"
        else:
            score, scorer = channel_scorer(model.pipeline, request.channel)
        ready = time.perf_counter()
        scored_by = output.ScoredBy(model.version.name, model.version.version)
        with output.open_sink(request.out, scored_by, reader.has_ids) as sink, _progress(reader, request) as bar:
            for chunk in reader.chunks():
                kept, probabilities = _score_chunk(score, chunk, model, reader)
                sink.write(kept, probabilities, predict_labels(probabilities, model.threshold))
                bar.update(len(chunk))
            if sink.rows == 0:
                raise DataError(f"{request.input}: no messages to score ({reader.bad_rows.count:,} bad rows skipped)")
    finished = time.perf_counter()
    return ScoreSummary(
        out=request.out,
        rows=sink.rows,
        spam=sink.spam,
        model=model.version,
        engine=request.engine,
        scorer=scorer,
        input_format=reader.format,
        load_seconds=ready - started,
        score_seconds=finished - ready,
        skipped=reader.bad_rows.count,
        first_skipped=list(reader.bad_rows.first),
    )


def _score_chunk(
    score: ChannelScorer, chunk: Chunk, model: ScoringModel, reader: CorpusReader
) -> tuple[Chunk, np.ndarray]:
    """The chunk's messages the model accepts and their P(spam). When the model refuses some (an e-mail over a
    limit its parser enforces raises for its whole batch), each message is tried alone to name those, which
    are bad rows (failing the run or skipped, as the reader's policy says), and the rest is scored."""
    try:
        return chunk, np.asarray(score(chunk.inputs), dtype=np.float64)
    except Exception:  # a Spark job fails with pyspark's own error types: whether the input is to blame is below
        refused = refused_rows(model.pipeline, chunk.inputs)
        if not refused:
            raise
    for index, reason in refused.items():
        reader.bad_row(BadRow(chunk.sources[index], 0, reason))
    kept = chunk.without(refused)
    return kept, np.asarray(score(kept.inputs) if len(kept) else np.empty(0), dtype=np.float64)


def refused_rows(model: Any, values: Sequence[Any]) -> dict[int, str]:
    """The inputs the model refuses on their own (a SpamfilterError from its pipeline), by index, with why."""
    refused = {}
    for index, value in enumerate(values):
        try:
            spam_probability(model, [value])
        except SpamfilterError as error:
            refused[index] = str(error).removeprefix("input row 0: ")
    return refused


def _spark_scorer(
    engine: contextlib.ExitStack, request: ScoreRequest, settings: Settings, model: ScoringModel
) -> ChannelScorer:
    """Start Spark (stopped when `engine` closes) and make the model's UDF; the scorer runs one Spark job a call."""
    from spamfilter.batch import spark
    from spamfilter.registry import tracking  # imports mlflow

    session = engine.enter_context(spark.spark_session(request.master))
    work = Path(engine.enter_context(tempfile.TemporaryDirectory(prefix="spamfilter-udf-")))
    with spark.quiet_pyspark():
        udf = tracking.load_spark_udf(session, settings.for_channel(request.channel), model.version, work)
    return spark.udf_scorer(session, udf, inputs.input_column(request.channel), model.spam_index)
