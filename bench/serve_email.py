"""Serving benchmark of the e-mail channel: the API against SpamAssassin 4.0.1's `spamd`, and a soak.

Trains the default e-mail model (params.yaml `channels.email`: `EmailFeaturizeParams`/`EmailTrainParams`)
on the seed-42 80/20 split of the de-duplicated SpamAssassin corpus and the default SMS model on the SMS
corpus, registers both as @champion in a fresh temporary MLflow store, and starts on 127.0.0.1:

  * `api`: `python -m api` (the image's command), WORKERS=2, both channels from the registry, the spamd
    listener on SPAMD_PORT, the prediction log on (SQLite), ADMIN_API_KEY set for the forced reloads;
  * `spamassassin`: `spamd -L` with rules + Bayes (`sa-learn` on the same training split), 2 children
    (`--max-children 2`), offline as in bench/sa_peer.py, whose peer this reuses.

The messages are the held-out ones closest in size to the corpus's median (3.5 KB). Three measurements:

1. E-mail over HTTP: wrk posts the messages (`Content-Type: message/rfc822`) to /predict/email with 8
   connections; SpamAssassin's spamd gets the same messages from an asyncio SPAMC/1.5 client (`CHECK`)
   with 8 connections. Messages/s of each, the ratio, and the API's p50/p99 latency.
2. spamd protocol: the same `spamc -c` command line (8 processes at a time, each running spamc in a
   loop) against the API's spamd listener and against SpamAssassin's spamd. Messages/s and the ratio.
   Each round measures 1 and 2 in turn (order reversed every other round); figures are medians over
   rounds and ratios the medians of the rounds' own ratios, so slow drifts of a shared machine cancel.
   Beside each throughput: the server's CPU milliseconds per message (utime + stime of its process tree
   over the run, from /proc), which other work on a shared machine moves less than it moves throughput;
   printed with its ratio, without a target.
3. Soak: wrk with 64 connections for `--soak-seconds`, SMS (/predict) and e-mail (/predict/email)
   requests alternating, POST /admin/reload every `--reload-every` seconds, the server processes' RSS
   sampled from /proc. Then: no non-2xx answer (nor socket error), every answered prediction logged
   (rows in the prediction log = 2xx answers the server counted in /metrics, once the log writers have
   flushed; wrk's own count ≤ the server's ≤ wrk's + connections, the requests wrk abandoned in flight at
   the end), and RSS growth over the second half ≤ 5% (the mean RSS over the last reload period against
   the mean over the first reload period after the half: whole periods, so a reload's transient cancels).

Targets: HTTP ≥ 20× spamd's messages/s and p99 ≤ 25 ms at 8 connections; spamc ≥ 20× against spamd; the
soak's three checks. Each figure is printed with its target and PASS/MISS.

    python bench/serve_email.py [--quick] [--archive PATH] [--sms-corpus PATH] [--duration 10] [--rounds 3]
                                [--messages 200] [--soak-seconds 300] [--reload-every 30]

Needs wrk, spamc and spamassassin (Debian packages; bench/sa_peer.py installs spamassassin and spamc with
apt-get as root when missing). All servers listen on 127.0.0.1 and nothing reaches the network. The 2 cores
are shared by the servers and the load generators. `--quick` is a smoke run (a smaller training set, short
points, one round, a 40 s soak): its figures are not the published ones.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import math
import os
import re
import secrets
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from spamfilter.errors import SpamfilterError

REPO_ROOT: Final = Path(__file__).resolve().parents[1]
DEFAULT_ARCHIVE: Final = REPO_ROOT.parent / "shared" / "data" / "datasets-spam-assassin-0.2.3.tgz"
DEFAULT_SMS_CORPUS: Final = REPO_ROOT.parent / "shared" / "data" / "sms_spam_collection.tsv"
LOOPBACK: Final = "127.0.0.1"
SEED: Final = 42
TEST_SHARE: Final = 0.2
CONNECTIONS: Final = 8
SOAK_CONNECTIONS: Final = 64
SPAMD_CHILDREN: Final = 2
EMAIL_PATH: Final = "/predict/email"
SMS_PATH: Final = "/predict"
PREDICTION_PATHS: Final = (SMS_PATH, EMAIL_PATH)
SMS_CHAMPION: Final = "models:/spam-classifier@champion"
EMAIL_CHAMPION: Final = "models:/spam-classifier-email@champion"

TARGET_HTTP_RATIO: Final = 20.0
TARGET_HTTP_P99_MS: Final = 25.0
TARGET_SPAMC_RATIO: Final = 20.0
TARGET_RSS_GROWTH: Final = 0.05

RSS_SAMPLE_SECONDS: Final = 2.0
VERDICT_MESSAGES: Final = 30  # messages every path scores once before the measurement (SpamAssassin is slow)
LOG_SETTLE_SECONDS: Final = 60.0  # the longest wait for the log writers to flush what they hold
REQUEST_TIMEOUT: Final = 60.0
SPAMD_STATUS: Final = re.compile(rb"SPAMD/\d+\.\d+ +(\d+) +(\S+)")
SPAMD_SPAM_HEADER: Final = re.compile(rb"^Spam: *(True|False|Yes|No) *; *(-?[\d.]+) */ *(-?[\d.]+)", re.MULTILINE)
PROMETHEUS_SAMPLE: Final = re.compile(r"^(?P<name>[a-zA-Z_:][\w:]*)(?:\{(?P<labels>[^}]*)\})? +(?P<value>\S+)")
PROMETHEUS_LABEL: Final = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


class BenchError(SpamfilterError):
    """The benchmark could not set up or measure something; the message says what and where."""


# -- pure helpers -------------------------------------------------------------------------------------------


def median_size_sample(sizes: Sequence[int], corpus_median: float, count: int) -> list[int]:
    """The indices of the `count` messages whose sizes are closest to `corpus_median` (ties: the earlier
    message), in their original order."""
    if count < 1:
        raise BenchError(f"a sample of {count} messages: need at least 1")
    if count > len(sizes):
        raise BenchError(f"a sample of {count} messages from {len(sizes)}: not enough messages")
    nearest = sorted(range(len(sizes)), key=lambda index: (abs(sizes[index] - corpus_median), index))
    return sorted(nearest[:count])


def percentile(values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile (`share` in (0, 1]): the smallest value at least `share` of the values
    are less than or equal to."""
    if not values:
        raise BenchError("a percentile of no values")
    if not 0.0 < share <= 1.0:
        raise BenchError(f"percentile share {share} is not in (0, 1]")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def spamc_check_request(raw: bytes) -> bytes:
    """A SPAMC/1.5 CHECK request for one raw message, as spamc -c sends it."""
    return b"CHECK SPAMC/1.5\r\nContent-length: %d\r\n\r\n" % len(raw) + raw


def parse_check_reply(reply: bytes) -> tuple[bool, float]:
    """(is spam, score) from a spamd answer to CHECK; BenchError for an error code or a malformed answer."""
    status = SPAMD_STATUS.match(reply)
    if status is None:
        raise BenchError(f"not a spamd answer: {reply[:80]!r}")
    if status.group(1) != b"0":
        raise BenchError(f"spamd answered {int(status.group(1))} {status.group(2).decode(errors='replace')}")
    verdict = SPAMD_SPAM_HEADER.search(reply)
    if verdict is None:
        raise BenchError(f"spamd answered EX_OK without a Spam header: {reply[:200]!r}")
    return verdict.group(1) in (b"True", b"Yes"), float(verdict.group(2))


def spamc_check_command(spamc: str, port: int, max_size: int) -> list[str]:
    """One `spamc -c` command line; only the port differs between the two servers. `--no-safe-fallback`:
    an error is an error, not a message passed as ham."""
    return [
        spamc, "--config", "/dev/null", "--dest", LOOPBACK, "--port", str(port), "--no-safe-fallback",
        "--max-size", str(max_size), "--check",
    ]  # fmt: skip


def requests_by_status(metrics_text: str, endpoints: Sequence[str]) -> dict[str, float]:
    """The API's `spam_api_requests_total` summed over `endpoints`, per status code, from /metrics."""
    counts: dict[str, float] = {}
    for line in metrics_text.splitlines():
        sample = PROMETHEUS_SAMPLE.match(line)
        if sample is None or sample.group("name") != "spam_api_requests_total":
            continue
        labels = dict(PROMETHEUS_LABEL.findall(sample.group("labels") or ""))
        if labels.get("endpoint") in endpoints:
            status = labels.get("status", "")
            counts[status] = counts.get(status, 0.0) + float(sample.group("value"))
    return counts


def metric_total(metrics_text: str, name: str) -> float:
    """The sum of every sample of one metric in /metrics text (0 when absent)."""
    total = 0.0
    for line in metrics_text.splitlines():
        sample = PROMETHEUS_SAMPLE.match(line)
        if sample is not None and sample.group("name") == name:
            total += float(sample.group("value"))
    return total


def is_2xx(status: str) -> bool:
    return len(status) == 3 and status.startswith("2") and status.isdigit()


@dataclass(frozen=True)
class RssSample:
    """The summed RSS of the server's processes, `seconds` after the soak started."""

    seconds: float
    rss_bytes: int
    pids: tuple[int, ...]


def rss_growth(samples: Sequence[RssSample], duration: float, window: float) -> tuple[float, float, float]:
    """(growth, RSS at the half, RSS at the end): the mean RSS over [duration - window, duration] against
    the mean over [duration / 2, duration / 2 + window]. A window of one reload period averages over one
    whole load-and-release cycle, so a reload caught in flight weighs the same at both ends."""
    if window <= 0 or window > duration / 2:
        raise BenchError(f"an RSS window of {window:g} s does not fit in the second half of {duration:g} s")
    half = duration / 2

    def mean_between(start: float, end: float) -> float:
        inside = [sample.rss_bytes for sample in samples if start <= sample.seconds <= end]
        if not inside:
            raise BenchError(f"no RSS sample between {start:.0f} s and {end:.0f} s of the soak")
        return statistics.fmean(inside)

    at_half = mean_between(half, half + window)
    at_end = mean_between(duration - window, duration)
    return at_end / at_half - 1.0, at_half, at_end


@dataclass(frozen=True)
class SoakFigures:
    """What the soak measured: the load generator's and the server's request counts, the rows the log
    holds for the soak's requests, and the RSS samples."""

    duration: float
    connections: int
    reload_every: float
    client_answers: int  # answers wrk received
    client_failures: int  # non-2xx answers and socket errors wrk saw
    server_by_status: Mapping[str, float]  # the server's counts on the prediction endpoints, per status
    logged_rows: int
    log_dropped: float
    reloads: Sequence[int]  # the status of every forced reload
    samples: Sequence[RssSample]


@dataclass(frozen=True)
class Check:
    """One printed figure: what, the measured value, the target, and whether it meets it."""

    name: str
    value: str
    target: str
    passed: bool

    def line(self) -> str:
        return f"{self.name}: {self.value} (target {self.target}): {'PASS' if self.passed else 'MISS'}"


def soak_checks(figures: SoakFigures) -> list[Check]:
    """The soak's verdicts: no failed request, every answered prediction logged, RSS flat over the second half."""
    server_2xx = round(sum(count for status, count in figures.server_by_status.items() if is_2xx(status)))
    server_other = round(sum(count for status, count in figures.server_by_status.items() if not is_2xx(status)))
    failed_reloads = sum(1 for status in figures.reloads if not 200 <= status < 300)
    failures = figures.client_failures + server_other + failed_reloads
    checks = [
        Check(
            "soak: non-2xx answers and socket errors",
            f"{failures} (wrk {figures.client_failures}, server-side non-2xx {server_other}, "
            f"failed reloads {failed_reloads} of {len(figures.reloads)})",
            "0",
            failures == 0 and len(figures.reloads) > 0,
        )
    ]
    # The server may have answered requests wrk abandoned in flight at the end: at most one per connection.
    counts_agree = figures.client_answers <= server_2xx + server_other <= figures.client_answers + figures.connections
    logged_all = figures.logged_rows == server_2xx and figures.log_dropped == 0
    checks.append(
        Check(
            "soak: every request logged",
            f"{figures.logged_rows} rows for {server_2xx} 2xx predictions the server counted "
            f"(wrk received {figures.client_answers} answers; {figures.log_dropped:.0f} rows dropped)",
            f"rows = server's 2xx count, and wrk's count <= server's <= wrk's + {figures.connections}",
            logged_all and counts_agree and server_2xx > 0,
        )
    )
    window = min(figures.reload_every, figures.duration / 4)
    growth, at_half, at_end = rss_growth(figures.samples, figures.duration, window)
    pids = {sample.pids for sample in figures.samples}
    restarted = "" if len(pids) == 1 else f"; the server's process set changed {len(pids) - 1} time(s)"
    checks.append(
        Check(
            "soak: RSS growth over the second half",
            f"{growth:+.1%} ({at_half / 2**20:.0f} MiB at the half -> {at_end / 2**20:.0f} MiB at the end, "
            f"means over {window:.0f} s windows{restarted})",
            f"<= {TARGET_RSS_GROWTH:.0%}",
            growth <= TARGET_RSS_GROWTH and len(pids) == 1,
        )
    )
    return checks


@dataclass(frozen=True)
class Point:
    """One load run against one server: answers, failures, seconds and latencies."""

    completed: int
    failed: int
    seconds: float
    p50_ms: float
    p99_ms: float
    first_error: str = ""
    server_cpu_seconds: float = math.nan  # CPU time the server's processes spent during the run

    @property
    def rate(self) -> float:
        return self.completed / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_ms_per_message(self) -> float:
        """The server's CPU milliseconds per answered message: what a message costs whatever else runs."""
        return self.server_cpu_seconds * 1e3 / self.completed if self.completed else math.nan


def point_from_latencies(latencies: Sequence[float], failed: int, seconds: float, first_error: str) -> Point:
    """A Point from per-request seconds of the successful requests."""
    milliseconds = [latency * 1e3 for latency in latencies]
    return Point(
        completed=len(latencies),
        failed=failed,
        seconds=seconds,
        p50_ms=percentile(milliseconds, 0.5) if milliseconds else math.nan,
        p99_ms=percentile(milliseconds, 0.99) if milliseconds else math.nan,
        first_error=first_error,
    )


def paired_ratio(numerator: Sequence[Point], denominator: Sequence[Point]) -> float:
    """The median over rounds of one round's throughput ratio (adjacent runs, so drifts cancel)."""
    return statistics.median(a.rate / b.rate for a, b in zip(numerator, denominator, strict=True))


def wrk_file_script(path: Path, requests: Sequence[tuple[str, str, Path]]) -> Path:
    """A wrk script cycling through requests (path, content type, body file): the bodies are read from the
    files byte for byte (a Lua long string would turn CRLF into LF)."""
    entries = ",\n".join(
        f"  {{{json.dumps(target)}, {json.dumps(content_type)}, {json.dumps(str(body))}}}"
        for target, content_type, body in requests
    )
    path.write_text(
        f"""local entries = {{
{entries}
}}
local prepared = {{}}
init = function(args)
  for i, entry in ipairs(entries) do
    local file = assert(io.open(entry[3], "rb"))
    local body = file:read("*a")
    file:close()
    prepared[i] = wrk.format("POST", entry[1], {{["Content-Type"] = entry[2]}}, body)
  end
end
local i = 0
request = function()
  i = i % #prepared + 1
  return prepared[i]
end
""",
        encoding="utf-8",
    )
    return path


# -- load generators ----------------------------------------------------------------------------------------


async def _spamd_connection(port: int, request: bytes) -> None:
    reader, writer = await asyncio.open_connection(LOOPBACK, port)
    try:
        writer.write(request)
        await writer.drain()
        reply = await reader.read()  # spamd answers, then closes
    finally:
        writer.close()
        await writer.wait_closed()
    parse_check_reply(reply)


async def _spamd_load(port: int, bodies: Sequence[bytes], connections: int, duration: float) -> Point:
    requests = [spamc_check_request(raw) for raw in bodies]
    latencies: list[float] = []
    errors: list[str] = []
    started = time.perf_counter()
    deadline = started + duration

    async def worker(offset: int) -> None:
        index = offset
        while time.perf_counter() < deadline:
            request = requests[index % len(requests)]
            index += connections
            sent = time.perf_counter()
            try:
                await asyncio.wait_for(_spamd_connection(port, request), REQUEST_TIMEOUT)
            except (OSError, TimeoutError, BenchError) as error:
                errors.append(f"{type(error).__name__}: {error}")
                continue
            latencies.append(time.perf_counter() - sent)

    await asyncio.gather(*(worker(offset) for offset in range(connections)))
    return point_from_latencies(latencies, len(errors), time.perf_counter() - started, errors[0] if errors else "")


def spamd_protocol_load(port: int, bodies: Sequence[bytes], connections: int, duration: float) -> Point:
    """`connections` SPAMC/1.5 CHECK clients, each sending one message per connection back to back, for
    `duration` seconds (requests under way then are finished and counted)."""
    return asyncio.run(_spamd_load(port, bodies, connections, duration))


def spamc_process_load(command: Sequence[str], files: Sequence[Path], connections: int, duration: float) -> Point:
    """`connections` threads, each running `command < message` (one spamc process per message) back to
    back for `duration` seconds. spamc -c exits 0 (ham) or 1 (spam); anything else is a failure."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    started = time.perf_counter()
    deadline = started + duration

    def worker(offset: int) -> None:
        index = offset
        while time.perf_counter() < deadline:
            path = files[index % len(files)]
            index += connections
            sent = time.perf_counter()
            with path.open("rb") as stdin:
                done = subprocess.run(
                    command, stdin=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False
                )
            elapsed = time.perf_counter() - sent
            with lock:
                if done.returncode in (0, 1):
                    latencies.append(elapsed)
                else:
                    errors.append(f"exit {done.returncode}: {done.stderr.decode(errors='replace').strip()[:200]}")

    threads = [threading.Thread(target=worker, args=(offset,)) for offset in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return point_from_latencies(latencies, len(errors), time.perf_counter() - started, errors[0] if errors else "")


def wrk_point(result: Any, duration: float) -> Point:
    """A Point from bench/serve.py's WrkResult."""
    return Point(
        completed=int(result.requests), failed=int(result.failed), seconds=duration, p50_ms=result.p50,
        p99_ms=result.p99,
    )  # fmt: skip


# -- the servers' processes ---------------------------------------------------------------------------------


def stat_cpu_ticks(stat: str) -> int:
    """utime + stime, in clock ticks, from the text of /proc/<pid>/stat (the command name, in parentheses,
    may hold spaces and parentheses: the fields are counted after its last ')')."""
    fields = stat[stat.rindex(")") + 2 :].split()
    # After the name: state is field 3 of proc(5), so utime (14) and stime (15) are at offsets 11 and 12.
    return int(fields[11]) + int(fields[12])


def cpu_seconds(pids: Sequence[int]) -> float:
    """CPU seconds the processes have used so far (those already gone count 0)."""
    ticks = 0
    for pid in pids:
        try:
            ticks += stat_cpu_ticks(Path(f"/proc/{pid}/stat").read_text())
        except OSError:
            continue
    return ticks / os.sysconf("SC_CLK_TCK")


def spamd_pid(listen: str) -> int:
    """SpamAssassin's spamd parent, found by the `--listen` address on its command line (spamd, a Perl
    script, may rewrite its command line as one string; its children call themselves `spamd child`)."""
    for entry in sorted(Path("/proc").iterdir(), key=lambda path: path.name):
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        words = command.replace(b" ", b"\0").split(b"\0")
        if any(word.endswith(b"spamd") for word in words) and f"--listen\0{listen}".encode() in b"\0".join(words):
            return int(entry.name)
    raise BenchError(f"no spamd process with --listen {listen} on its command line")


def with_server_cpu(root_pid: int, measure: Callable[[], Point]) -> Point:
    """`measure()`, with the CPU seconds the process tree under `root_pid` spent meanwhile."""
    pids = process_tree(root_pid)
    before = cpu_seconds(pids)
    point = measure()
    after_pids = process_tree(root_pid)
    if after_pids != pids:
        return point  # a process came or went: the difference would not be this run's
    return dataclasses.replace(point, server_cpu_seconds=cpu_seconds(pids) - before)


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants, from /proc (the uvicorn supervisor and its workers)."""
    found: list[int] = []
    pending = [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        try:
            tasks = list(Path(f"/proc/{current}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                pending.extend(int(child) for child in (task / "children").read_text().split())
            except OSError:
                continue
    return sorted(found)


def rss_of(pid: int) -> int:
    """Resident bytes of one process (VmRSS in /proc/<pid>/status); 0 once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    return int(found.group(1)) * 1024 if found else 0


class RssSampler:
    """Samples the summed RSS of a process tree every `interval` seconds on a thread, until stopped."""

    def __init__(self, pid: int, interval: float) -> None:
        self.pid = pid
        self.interval = interval
        self.samples: list[RssSample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._started = 0.0

    def start(self) -> None:
        self._started = time.monotonic()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while True:
            pids = process_tree(self.pid)
            self.samples.append(
                RssSample(time.monotonic() - self._started, sum(rss_of(pid) for pid in pids), tuple(pids))
            )
            if self._stop.wait(self.interval):
                return


class Reloader:
    """POSTs /admin/reload every `interval` seconds on a thread, until stopped; keeps each status."""

    def __init__(self, url: str, admin_key: str, interval: float) -> None:
        self.url = url
        self.admin_key = admin_key
        self.interval = interval
        self.statuses: list[int] = []
        self.seconds: list[float] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        import httpx  # imported here: the smoke test loads this module without the client libraries' cost

        with httpx.Client(timeout=REQUEST_TIMEOUT) as client:
            while not self._stop.wait(self.interval):
                started = time.perf_counter()
                try:
                    answer = client.post(self.url, headers={"X-API-Key": self.admin_key})
                except httpx.HTTPError as error:
                    self.statuses.append(0)
                    self.errors.append(f"{type(error).__name__}: {error}")
                    continue
                self.statuses.append(answer.status_code)
                self.seconds.append(time.perf_counter() - started)
                if answer.status_code != 200:
                    self.errors.append(f"{answer.status_code}: {answer.text[:300]}")


def logged_rows(database: Path) -> dict[str, int]:
    """Rows of the prediction log per channel (the SQLite file the API writes, read-only)."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30) as connection:
        rows = connection.execute("SELECT channel, COUNT(*) FROM predictions GROUP BY channel").fetchall()
    return {str(channel): int(count) for channel, count in rows}


def spamd_answers_ping(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=2) as connection:
            connection.sendall(b"PING SPAMC/1.5\r\n\r\n")
            reply = connection.recv(128)
    except OSError:
        return False
    return reply.startswith(b"SPAMD/") and b"PONG" in reply


def load_average() -> str:
    """The 1, 5 and 15 minute load averages: how busy the shared machine was."""
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise BenchError(f"{what} within {timeout:.0f} s")
        time.sleep(0.25)


# -- models -------------------------------------------------------------------------------------------------


@dataclass
class MailSplit:
    """The de-duplicated corpus's seed-42 split: raw messages and labels of each side, and the median size."""

    train: list[tuple[bytes, str]]
    test: list[tuple[bytes, str]]
    corpus_median: float
    corpus_size: int


def read_mail_split(archive: Path) -> MailSplit:
    from spamfilter.config import DEFAULT_LABEL_FOLDERS
    from spamfilter.data.corpus import split
    from spamfilter.data.mail_corpus import read_mail_corpus
    from spamfilter.data.mail_dataset import deduplicate_mail
    from spamfilter.mail import MailLimits

    limits = MailLimits()
    dataset = deduplicate_mail([read_mail_corpus(archive, DEFAULT_LABEL_FOLDERS, limits.max_bytes)], limits)
    train, test = split(dataset.messages, TEST_SHARE, SEED)
    return MailSplit(
        train=[(m.raw, m.label) for m in train],
        test=[(m.raw, m.label) for m in test],
        corpus_median=float(statistics.median(len(m.raw) for m in dataset.messages)),
        corpus_size=len(dataset.messages),
    )


def stratified_subset(rows: Sequence[tuple[bytes, str]], per_label: int) -> list[tuple[bytes, str]]:
    """At most `per_label` rows of each label, evenly spread over the rows (for --quick)."""
    chosen: list[tuple[bytes, str]] = []
    for label in sorted({label for _, label in rows}):
        of_label = [row for row in rows if row[1] == label]
        step = max(1, len(of_label) // per_label)
        chosen.extend(of_label[::step][:per_label])
    return chosen


def train_and_register_email(rows: Sequence[tuple[bytes, str]], env: Mapping[str, str]) -> str:
    """Fit the default e-mail model on `rows` and register it as spam-classifier-email@champion; its version."""
    from spamfilter.config import EmailParams, Settings, flatten
    from spamfilter.modeling import channels
    from spamfilter.modeling.email import EmailFeaturizeParams, EmailTrainParams, build_email_model
    from spamfilter.registry import tracking, versions

    model = build_email_model(EmailFeaturizeParams(), EmailTrainParams())
    model.fit([raw for raw, _ in rows], [label for _, label in rows])
    settings = Settings(**env).for_channel("email")  # type: ignore[arg-type]
    run = tracking.log_training_run(
        settings,
        model,
        params=flatten(EmailParams().model_dump(mode="json", exclude={"gate", "monitor"})),
        tags={versions.CHANNEL_TAG: "email"},  # the API refuses a registered model not tagged as its channel's
        input_example=channels.input_example("email"),
        run_name="bench-serve-email",
        input_column=channels.input_column("email"),
    )
    tracking.set_alias(settings, "champion", run.version)
    return run.version


# -- the benchmark ------------------------------------------------------------------------------------------


@dataclass
class Rounds:
    """Every measured point, per server, in round order."""

    points: dict[str, list[Point]] = field(default_factory=dict)

    def add(self, name: str, point: Point) -> None:
        self.points.setdefault(name, []).append(point)

    def median(self, name: str, key: str) -> float:
        return statistics.median(float(getattr(point, key)) for point in self.points[name])

    def failed(self) -> int:
        return sum(point.failed for points in self.points.values() for point in points)


def print_point(label: str, point: Point) -> None:
    error = f"   first error: {point.first_error}" if point.first_error else ""
    print(
        f"  {label:<44} {point.rate:8.1f} msg/s   p50 {point.p50_ms:8.2f} ms   p99 {point.p99_ms:8.2f} ms   "
        f"server CPU {point.cpu_ms_per_message:7.2f} ms/msg   {point.completed} ok, {point.failed} failed{error}",
        flush=True,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archive", type=Path, default=DEFAULT_ARCHIVE, help="the SpamAssassin corpus .tgz")
    parser.add_argument("--sms-corpus", type=Path, default=Path(os.environ.get("SPAM_DATA") or DEFAULT_SMS_CORPUS))
    parser.add_argument("--duration", type=float, default=10, help="seconds per measured point")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every point, order reversed each round")
    parser.add_argument("--messages", type=int, default=200, help="held-out messages nearest the median size")
    parser.add_argument("--soak-seconds", type=float, default=300, help="the soak's length (0: no soak)")
    parser.add_argument("--reload-every", type=float, default=30, help="seconds between forced reloads in the soak")
    parser.add_argument("--start-timeout", type=float, default=600, help="seconds a server may take to start")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: small training sets, 3 s points, 1 round, 40 s soak"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.rounds, args.messages = 3, 1, min(args.messages, 60)
        args.soak_seconds, args.reload_every = min(args.soak_seconds, 40), min(args.reload_every, 10)
    if args.soak_seconds and args.reload_every * 2 > args.soak_seconds:
        parser.error("--soak-seconds must hold at least two reload periods (--reload-every)")
    for tool in ("wrk", "spamc"):
        if shutil.which(tool) is None:
            print(f"error: {tool} not found (apt-get install wrk spamassassin spamc)", file=sys.stderr)
            return 1
    tmp = Path(tempfile.mkdtemp(prefix="bench-serve-email-"))
    try:
        return run(args, tmp)
    except SpamfilterError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(args: argparse.Namespace, tmp: Path) -> int:
    # Imported here, not at the top: bench/serve.py and bench/sa_peer.py are siblings of this script (on
    # sys.path when it runs), and the smoke test loads this module for its pure helpers without them.
    import httpx
    import sa_peer
    import serve

    version = sa_peer.ensure_installed()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("MLFLOW_", "SPAM_", "API_"))}
    env.update(
        {
            "MLFLOW_TRACKING_URI": f"sqlite:///{tmp / 'mlflow.db'}",
            "SPAM_MLFLOW_ARTIFACT_ROOT": str(tmp / "mlartifacts"),
            "PATH": f"{serve.VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONPATH": str(REPO_ROOT),
        }
    )
    store = {key: env[key] for key in ("MLFLOW_TRACKING_URI", "SPAM_MLFLOW_ARTIFACT_ROOT")}

    load_at_start = load_average()
    started = time.perf_counter()
    mail = read_mail_split(args.archive)
    test_sizes = [len(raw) for raw, _ in mail.test]
    chosen = [mail.test[index] for index in median_size_sample(test_sizes, mail.corpus_median, args.messages)]
    bodies = [raw for raw, _ in chosen]
    sizes = sorted(len(raw) for raw in bodies)
    spam_share = sum(label == "spam" for _, label in chosen) / len(chosen)
    print(
        f"{args.archive.name}: {mail.corpus_size} de-duplicated messages, median {mail.corpus_median:,.0f} bytes; "
        f"seed-{SEED} split {len(mail.train)} train / {len(mail.test)} held out "
        f"(read in {time.perf_counter() - started:.0f} s)\n"
        f"load: the {len(bodies)} held-out messages nearest the median size ({sizes[0]:,}-{sizes[-1]:,} bytes, "
        f"{spam_share:.0%} spam)",
        flush=True,
    )
    train_rows = stratified_subset(mail.train, 300) if args.quick else mail.train
    message_dir = tmp / "messages"
    message_dir.mkdir()
    files = []
    for number, raw in enumerate(bodies):
        path = message_dir / f"{number:04d}.eml"
        path.write_bytes(raw)
        files.append(path)
    texts, labels = serve.load_corpus(args.sms_corpus)
    sms_files = []
    for number, text in enumerate(texts[:: max(1, len(texts) // 300)][:300]):
        path = message_dir / f"{number:04d}.json"
        path.write_text(json.dumps({"text": text}), encoding="utf-8")
        sms_files.append(path)

    with ExitStack() as stack:
        peer = stack.enter_context(sa_peer.SpamAssassinPeer(children=SPAMD_CHILDREN, bayes=True))
        print(f"SpamAssassin {version}: {' '.join(peer.spamd_command())}", flush=True)
        learned: dict[str, int] = {}
        learn_errors: list[BaseException] = []

        def learn() -> None:
            try:
                learned.update({str(label): count for label, count in peer.learn(train_rows).items()})
            except BaseException as error:  # reported in the main thread
                learn_errors.append(error)

        # sa-learn runs while this process fits the e-mail model: it spends its time in its own process.
        learner = threading.Thread(target=learn)
        started = time.perf_counter()
        learner.start()
        email_version = train_and_register_email(train_rows, store)
        print(
            f"e-mail model: default params, fitted on {len(train_rows)} messages, registered as "
            f"{EMAIL_CHAMPION} (version {email_version}) in {time.perf_counter() - started:.0f} s",
            flush=True,
        )
        serve.register_model(texts, labels, store)
        print(f"SMS model: default params, fitted on {len(texts)} texts, registered as {SMS_CHAMPION}", flush=True)
        learner.join()
        if learn_errors:
            raise learn_errors[0]
        print(
            f"sa-learn: {learned.get('spam', 0)} spam, {learned.get('ham', 0)} ham learned "
            f"({time.perf_counter() - started:.0f} s since training began)",
            flush=True,
        )

        port, spamd_port = serve.free_port(), serve.free_port()
        base = f"http://{LOOPBACK}:{port}"
        admin_key = secrets.token_hex(16)
        log_db = tmp / "predictions.db"
        api_env = {
            **env,
            "HOST": LOOPBACK,
            "PORT": str(port),
            "WORKERS": "2",
            "MODEL_URI": SMS_CHAMPION,
            "EMAIL_MODEL_URI": EMAIL_CHAMPION,
            "SPAMD_PORT": str(spamd_port),
            "PREDICTION_LOG_URL": f"sqlite:///{log_db}",
            "ADMIN_API_KEY": admin_key,
            "MODEL_POLL_INTERVAL": "0",
        }
        api = stack.enter_context(
            serve.server([sys.executable, "-m", "api"], api_env, f"{base}/ready", tmp / "api.log", args.start_timeout)
        )

        readiness: list[str] = []

        def both_channels_ready() -> bool:
            answer = httpx.get(f"{base}/ready", timeout=5)
            readiness[:] = [answer.text]
            return answer.status_code == 200 and answer.json().get("status") == "ready"

        try:
            wait_until(both_channels_ready, args.start_timeout, "the API did not serve both channels")
            wait_until(
                lambda: spamd_answers_ping(spamd_port), args.start_timeout, "the API's spamd did not answer PING"
            )
        except BenchError as error:
            log_tail = (tmp / "api.log").read_text(errors="replace")[-3000:]
            raise BenchError(f"{error}; /ready: {readiness[-1:]}\napi log:\n{log_tail}") from None

        spamc = shutil.which("spamc")
        assert spamc is not None  # checked in main()
        max_size = sa_peer.MAX_MESSAGE_BYTES
        commands = {
            "api": spamc_check_command(spamc, spamd_port, max_size),
            "spamassassin": spamc_check_command(spamc, peer.port, max_size),
        }
        print(f"spamc: {' '.join(commands['api'])} < message (the same, with --port {peer.port}, for spamd)")

        # Every message once through the service's two paths (all must be accepted), and the first few through
        # SpamAssassin's (it takes a second or more each on a busy machine): the warm-up, and a look at the verdicts.
        judged = set(range(0, len(files), max(1, len(files) // VERDICT_MESSAGES))[:VERDICT_MESSAGES])
        verdicts = {"api http": 0, "api spamc": 0, "spamassassin": 0}
        with httpx.Client(timeout=REQUEST_TIMEOUT) as client:
            for number, (path, raw) in enumerate(zip(files, bodies, strict=True)):
                answer = client.post(f"{base}{EMAIL_PATH}", content=raw, headers={"Content-Type": "message/rfc822"})
                if answer.status_code != 200:
                    raise BenchError(f"{path.name}: /predict/email answered {answer.status_code}: {answer.text[:300]}")
                verdicts["api http"] += number in judged and answer.json()["label"] == "spam"
        for name, key, everything in (("api", "api spamc", True), ("spamassassin", "spamassassin", False)):
            for number, path in enumerate(files):
                if not everything and number not in judged:
                    continue
                with path.open("rb") as stdin:
                    done = subprocess.run(commands[name], stdin=stdin, capture_output=True, check=False)
                if done.returncode not in (0, 1):
                    raise BenchError(f"{path.name}: spamc against {name} exited {done.returncode}: {done.stderr!r}")
                verdicts[key] += number in judged and done.returncode == 1
        true_spam = sum(chosen[number][1] == "spam" for number in judged)
        print(
            f"spam verdicts on {len(judged)} of these messages (one in {max(1, len(files) // VERDICT_MESSAGES)}): "
            f"labelled {true_spam}, " + ", ".join(f"{name} {count}" for name, count in verdicts.items()),
            flush=True,
        )

        script = wrk_file_script(tmp / "email.lua", [(EMAIL_PATH, "message/rfc822", path) for path in files])
        target = serve.Target(f"{base}{EMAIL_PATH}", script)
        peer_pid = spamd_pid(f"{LOOPBACK}:{peer.port}")
        measurements: dict[str, tuple[int, Callable[[], Point]]] = {
            "api http (wrk)": (
                api.pid,
                lambda: wrk_point(serve.run_wrk(target, CONNECTIONS, args.duration), args.duration),
            ),
            "spamassassin spamd (SPAMC client)": (
                peer_pid,
                lambda: spamd_protocol_load(peer.port, bodies, CONNECTIONS, args.duration),
            ),
            "api spamd (spamc)": (
                api.pid,
                lambda: spamc_process_load(commands["api"], files, CONNECTIONS, args.duration),
            ),
            "spamassassin spamd (spamc)": (
                peer_pid,
                lambda: spamc_process_load(commands["spamassassin"], files, CONNECTIONS, args.duration),
            ),
        }
        print(
            f"\n{CONNECTIONS} connections, {args.duration:g} s per point, {args.rounds} round(s), servers in turn "
            "(127.0.0.1):",
            flush=True,
        )
        rounds = Rounds()
        for round_number in range(args.rounds):
            order = list(measurements) if round_number % 2 == 0 else list(reversed(measurements))
            for name in order:
                point = with_server_cpu(*measurements[name])
                rounds.add(name, point)
                print_point(f"round {round_number + 1} {name}", point)

        soak: list[Check] = []
        if args.soak_seconds:
            soak = run_soak(args, tmp, base, admin_key, api.pid, log_db, files, sms_files)

    checks = summary_checks(rounds, args.rounds)
    print("\nmedians over rounds:")
    for name in rounds.points:
        print(
            f"  {name:<34} {rounds.median(name, 'rate'):8.1f} msg/s   p50 {rounds.median(name, 'p50_ms'):8.2f} ms   "
            f"p99 {rounds.median(name, 'p99_ms'):8.2f} ms   server CPU {rounds.median(name, 'cpu_ms_per_message'):7.2f} "
            "ms/msg"
        )
    print(f"\nsummary (load average now {load_average()}; at the start {load_at_start}):")
    for check in [*checks, *soak]:
        print(f"  {check.line()}")
    for line in cpu_lines(rounds):
        print(f"  {line}")
    print(f"  failed requests over all measured points: {rounds.failed()}")
    if args.quick:
        print("  (--quick: a smoke run; these are not the figures to publish)")
    return 0


def summary_checks(rounds: Rounds, count: int) -> list[Check]:
    http = rounds.points["api http (wrk)"]
    http_peer = rounds.points["spamassassin spamd (SPAMC client)"]
    spamc_api = rounds.points["api spamd (spamc)"]
    spamc_peer = rounds.points["spamassassin spamd (spamc)"]
    http_ratio = paired_ratio(http, http_peer)
    spamc_ratio = paired_ratio(spamc_api, spamc_peer)
    p99 = rounds.median("api http (wrk)", "p99_ms")
    return [
        Check(
            f"e-mail over HTTP: /predict/email vs spamd -L, {CONNECTIONS} connections",
            f"{rounds.median('api http (wrk)', 'rate'):.0f} vs {rounds.median('spamassassin spamd (SPAMC client)', 'rate'):.1f} "
            f"msg/s, {http_ratio:.1f}x (median of {count} paired rounds)",
            f">= {TARGET_HTTP_RATIO:.0f}x",
            http_ratio >= TARGET_HTTP_RATIO,
        ),
        Check(
            f"e-mail over HTTP: /predict/email latency at {CONNECTIONS} connections",
            f"p50 {rounds.median('api http (wrk)', 'p50_ms'):.2f} ms, p99 {p99:.2f} ms (medians of {count} rounds)",
            f"p99 <= {TARGET_HTTP_P99_MS:.0f} ms",
            p99 <= TARGET_HTTP_P99_MS,
        ),
        Check(
            f"spamd protocol: the same spamc -c, {CONNECTIONS} at a time, this service vs spamd -L",
            f"{rounds.median('api spamd (spamc)', 'rate'):.0f} vs {rounds.median('spamassassin spamd (spamc)', 'rate'):.1f} "
            f"msg/s, {spamc_ratio:.1f}x (median of {count} paired rounds)",
            f">= {TARGET_SPAMC_RATIO:.0f}x",
            spamc_ratio >= TARGET_SPAMC_RATIO,
        ),
    ]


def cpu_lines(rounds: Rounds) -> list[str]:
    """What a message costs each server in CPU, and the ratios of those costs: figures a busy shared machine
    does not move much, printed beside the throughput ratios (no target)."""
    lines = []
    for ours, theirs in (
        ("api http (wrk)", "spamassassin spamd (SPAMC client)"),
        ("api spamd (spamc)", "spamassassin spamd (spamc)"),
    ):
        cost, peer_cost = rounds.median(ours, "cpu_ms_per_message"), rounds.median(theirs, "cpu_ms_per_message")
        lines.append(
            f"server CPU per message, {ours} vs {theirs}: {cost:.2f} vs {peer_cost:.1f} ms, "
            f"{peer_cost / cost:.1f}x (no target: what contention moves less than throughput)"
        )
    return lines


def run_soak(
    args: argparse.Namespace,
    tmp: Path,
    base: str,
    admin_key: str,
    server_pid: int,
    log_db: Path,
    email_files: Sequence[Path],
    sms_files: Sequence[Path],
) -> list[Check]:
    import httpx  # see run()
    import serve

    mixed: list[tuple[str, str, Path]] = []
    for index in range(max(len(email_files), len(sms_files))):
        mixed.append((EMAIL_PATH, "message/rfc822", email_files[index % len(email_files)]))
        mixed.append((SMS_PATH, "application/json", sms_files[index % len(sms_files)]))
    script = wrk_file_script(tmp / "soak.lua", mixed)

    def server_counts() -> tuple[dict[str, float], float]:
        text = httpx.get(f"{base}/metrics", timeout=REQUEST_TIMEOUT).text
        return requests_by_status(text, PREDICTION_PATHS), metric_total(text, "spam_api_prediction_log_dropped_total")

    def settled_rows() -> int:
        # The writers flush every PREDICTION_LOG_FLUSH_INTERVAL (0.5 s): wait until the rows stop changing.
        deadline = time.monotonic() + LOG_SETTLE_SECONDS
        previous, stable_since = -1, time.monotonic()
        while time.monotonic() < deadline:
            rows = sum(logged_rows(log_db).values())
            if rows != previous:
                previous, stable_since = rows, time.monotonic()
            elif time.monotonic() - stable_since >= 3.0:
                break
            time.sleep(0.5)
        return previous

    rows_before = settled_rows()
    counts_before, dropped_before = server_counts()
    print(
        f"\nsoak: {args.soak_seconds:g} s, {SOAK_CONNECTIONS} connections, SMS and e-mail alternating, "
        f"POST /admin/reload every {args.reload_every:g} s, RSS sampled every {RSS_SAMPLE_SECONDS:g} s …",
        flush=True,
    )
    sampler = RssSampler(server_pid, RSS_SAMPLE_SECONDS)
    reloader = Reloader(f"{base}/admin/reload", admin_key, args.reload_every)
    sampler.start()
    reloader.start()
    try:
        result = serve.run_wrk(serve.Target(f"{base}{SMS_PATH}", script), SOAK_CONNECTIONS, args.soak_seconds)
    finally:
        reloader.stop()
        sampler.stop()
    rows = settled_rows() - rows_before
    counts_after, dropped_after = server_counts()
    by_status = {
        status: counts_after.get(status, 0.0) - counts_before.get(status, 0.0)
        for status in set(counts_after) | set(counts_before)
    }
    reload_seconds = ", ".join(f"{seconds:.1f}" for seconds in reloader.seconds)
    print(
        f"  wrk: {result.requests} answers, {result.rps:.0f} req/s, p50 {result.p50:.2f} ms, p99 {result.p99:.2f} ms, "
        f"{result.failed} failed\n"
        f"  reloads: {len(reloader.statuses)} ({', '.join(map(str, reloader.statuses))}), seconds each: {reload_seconds}"
        + (f"\n  reload errors: {reloader.errors[:3]}" if reloader.errors else "")
        + f"\n  RSS samples: {len(sampler.samples)}, "
        f"{min(s.rss_bytes for s in sampler.samples) / 2**20:.0f}-{max(s.rss_bytes for s in sampler.samples) / 2**20:.0f} MiB "
        f"over processes {sampler.samples[-1].pids}",
        flush=True,
    )
    figures = SoakFigures(
        duration=args.soak_seconds,
        connections=SOAK_CONNECTIONS,
        reload_every=args.reload_every,
        client_answers=result.requests,
        client_failures=result.failed,
        server_by_status=by_status,
        logged_rows=rows,
        log_dropped=dropped_after - dropped_before,
        reloads=reloader.statuses,
        samples=[sample for sample in sampler.samples if sample.seconds <= args.soak_seconds],
    )
    return soak_checks(figures)


if __name__ == "__main__":
    sys.exit(main())
