"""The Spark engine: chunks of messages scored by the registered version's own MLflow model as a Spark UDF
(`mlflow.pyfunc.spark_udf`, made in `spamfilter.registry.tracking.load_spark_udf`).

The driver reads the input with the same readers as the local engine (the same rows, sources, ids and
hashes), ships each chunk to Spark as a DataFrame, and collects the chunk's probabilities back as Arrow:
no shared filesystem is needed between driver and executors, so `local[*]`, a cluster master or a Spark
Connect server (`SPARK_REMOTE`) all work the same. The executors do the scoring; the driver's reading and
shipping bounds the rate on a large cluster.

A local session binds the driver to 127.0.0.1, runs no UI, and keeps its memory small; pyspark is an
optional extra (`pip install 'spamfilter[spark]'`) and a classic session needs Java 17 or newer.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from spamfilter.errors import ConfigError

if TYPE_CHECKING:  # pyspark is optional: imported where a Spark run needs it
    from pyspark.sql import SparkSession

MIN_JAVA: Final = 17
DEFAULT_MASTER: Final = "local[*]"
DEFAULT_CHUNK_ROWS: Final = 100_000
JAVA_INSTALL_HINT: Final = "Debian: apt-get install openjdk-17-jre-headless, or `make score ENGINE=spark` installs it"
# Spark settings for a session this process starts: small memory, loopback only, quiet, nothing served.
LOCAL_CONF: Final = {
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.driver.memory": "1g",
    "spark.sql.shuffle.partitions": "4",
}
COMMON_CONF: Final = {
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.log.level": "ERROR",
}
_JAVA_VERSION: Final = re.compile(r'version "(\d+)(?:\.(\d+))?')
_ROW: Final = "__row"
_PROBA: Final = "__proba"


def require_pyspark() -> None:
    """A ConfigError when pyspark is not installed."""
    try:
        import pyspark  # noqa: F401 - only whether it imports
    except ImportError:
        raise ConfigError(
            "--engine spark needs pyspark, which is not installed: pip install 'spamfilter[spark]' "
            "(or use --engine local)"
        ) from None


def java_executable(environ: dict[str, str] | None = None) -> str | None:
    """The `java` Spark's launcher would run: `$JAVA_HOME/bin/java` when JAVA_HOME is set, else `java` on PATH."""
    environ = dict(os.environ) if environ is None else environ
    home = environ.get("JAVA_HOME")
    if home:
        candidate = Path(home) / "bin" / "java"
        return str(candidate) if candidate.is_file() and os.access(candidate, os.X_OK) else None
    return shutil.which("java", path=environ.get("PATH", ""))


def java_major(version_output: str) -> int | None:
    """The major version in `java -version`'s output (`1.8.0_392` → 8, `17.0.15` → 17), or None."""
    found = _JAVA_VERSION.search(version_output)
    if found is None:
        return None
    major = int(found.group(1))
    return int(found.group(2) or 0) if major == 1 else major


def require_java() -> str:
    """The path of a Java 17+ `java`, or a ConfigError naming what is missing and where it was looked for."""
    java = java_executable()
    if java is None:
        where = (
            f"JAVA_HOME={os.environ['JAVA_HOME']} has no bin/java"
            if os.environ.get("JAVA_HOME")
            else ("no `java` on PATH and JAVA_HOME is not set")
        )
        raise ConfigError(f"--engine spark needs Java {MIN_JAVA} or newer: {where} ({JAVA_INSTALL_HINT})")
    try:
        shown = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"--engine spark: {java} -version failed ({exc})") from None
    major = java_major(shown.stderr + shown.stdout)
    if major is None or major < MIN_JAVA:
        found = f"Java {major}" if major is not None else "no Java version in its output"
        raise ConfigError(f"--engine spark needs Java {MIN_JAVA} or newer: {java} is {found} ({JAVA_INSTALL_HINT})")
    return java


def preflight(master: str | None) -> None:
    """Check what a Spark run needs before anything else is done: pyspark, one Spark named, and Java 17+
    for a classic session (a Spark Connect client runs no JVM)."""
    require_pyspark()
    remote = os.environ.get("SPARK_REMOTE")
    if remote and master:
        raise ConfigError(f"--master {master} and SPARK_REMOTE={remote} both name a Spark to use: keep one")
    if not remote:
        require_java()


@contextlib.contextmanager
def quiet_pyspark() -> Iterator[None]:
    # pyspark warns on every pandas conversion that it does not "fully support" pandas 3; what this engine
    # uses of it (Arrow conversion of string, binary and integer columns) is tested here.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not yet fully support pandas", category=FutureWarning)
        yield


@contextlib.contextmanager
def spark_session(master: str | None = None, app_name: str = "spamfilter-score") -> Iterator[SparkSession]:
    """A Spark session for the run, stopped at the end: Spark Connect when `SPARK_REMOTE` is set, else a
    classic session on `master` (default `local[*]`; a local one bound to 127.0.0.1)."""
    preflight(master)
    remote = os.environ.get("SPARK_REMOTE")
    if not remote:
        # Spark starts its Python workers with $PYSPARK_PYTHON (default: `python3` on PATH, which may lack
        # this environment's packages): point it at this interpreter unless the user chose one.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        if (master or DEFAULT_MASTER).startswith("local"):
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # loopback from the start, no hostname lookup
    from pyspark.sql import SparkSession  # pyspark is an optional extra: only for --engine spark

    builder = SparkSession.builder.appName(app_name)
    chosen = master or DEFAULT_MASTER
    conf = dict(COMMON_CONF)
    if not remote:
        builder = builder.master(chosen)
        if chosen.startswith("local"):
            conf.update(LOCAL_CONF)
    for key, value in conf.items():
        builder = builder.config(key, value)
    try:
        with quiet_pyspark():
            session = builder.getOrCreate()
    except Exception as exc:  # the JVM or the connection failing: whatever pyspark raises, Spark is unusable
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        target = f"Spark Connect at {remote}" if remote else f"Spark (master {chosen})"
        raise ConfigError(f"--engine spark: {target} did not start: {first_line}") from None
    try:
        yield session
    finally:
        session.stop()


def is_connect(session: Any) -> bool:
    """Whether `session` is a Spark Connect client session."""
    return type(session).__module__.startswith("pyspark.sql.connect")


def udf_scorer(
    session: SparkSession, udf: Any, input_column: str, spam_index: int, partitions: int | None = None
) -> Callable[[Sequence[Any]], np.ndarray]:
    """A scorer of model inputs in Spark: P(spam) of each, from `udf` (class probabilities in the model's class
    order). Each call is one Spark job of `partitions` tasks (default: the session's parallelism)."""
    import pandas as pd
    import pyarrow.compute as pc
    from pyspark.sql import functions as F  # noqa: N812 - pyspark's own convention

    spread = _repartition(session, partitions)

    def score(values: Sequence[Any]) -> np.ndarray:
        count = len(values)
        with quiet_pyspark():
            frame = session.createDataFrame(
                pd.DataFrame({_ROW: np.arange(count, dtype=np.int64), input_column: list(values)})
            )
            table = spread(frame).select(F.col(_ROW), udf(F.col(input_column)).alias(_PROBA)).toArrow()
        rows = table.column(_ROW).to_numpy()
        if len(rows) != count:
            raise RuntimeError(f"Spark returned {len(rows)} scores for {count} messages")
        ordered = np.empty(count, dtype=np.float64)
        ordered[rows] = pc.list_element(table.column(_PROBA), spam_index).to_numpy(zero_copy_only=False)
        return ordered

    return score


def _repartition(session: Any, partitions: int | None) -> Callable[[Any], Any]:
    """How each chunk's DataFrame is spread over the executors. A classic session slices local data into
    its default parallelism already; a Spark Connect one sends it as one partition, so it is repartitioned."""
    if partitions is None and not is_connect(session):
        return lambda frame: frame
    count = partitions or int(session.conf.get("spark.default.parallelism", "8") or 8)
    return lambda frame: frame.repartition(count)
