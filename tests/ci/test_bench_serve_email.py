"""The pure helpers of bench/serve_email.py, on synthetic inputs: no servers, no corpus, no model.

The benchmark's figures are only as good as these: which messages it loads with, how it reads a percentile,
a spamd answer and the API's /metrics, and how it judges the soak."""

from __future__ import annotations

import importlib.util
import random
import statistics
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    path = ROOT / "bench" / "serve_email.py"
    spec = importlib.util.spec_from_file_location("bench_serve_email", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their annotations through sys.modules
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(spec.name, None)
    return module


def test_the_sample_is_the_messages_nearest_the_median(bench: ModuleType) -> None:
    rng = random.Random(7)
    sizes = [rng.randint(200, 300_000) for _ in range(500)]
    median = statistics.median(sizes)
    chosen = bench.median_size_sample(sizes, median, 40)
    assert len(chosen) == 40 and chosen == sorted(set(chosen))
    farthest_chosen = max(abs(sizes[i] - median) for i in chosen)
    nearest_left_out = min(abs(sizes[i] - median) for i in set(range(len(sizes))) - set(chosen))
    assert farthest_chosen <= nearest_left_out


def test_the_sample_breaks_ties_by_order_and_refuses_impossible_sizes(bench: ModuleType) -> None:
    assert bench.median_size_sample([90, 110, 110, 90, 100], 100, 3) == [0, 1, 4]
    with pytest.raises(bench.BenchError, match="not enough messages"):
        bench.median_size_sample([1, 2], 1.5, 3)
    with pytest.raises(bench.BenchError, match="at least 1"):
        bench.median_size_sample([1, 2], 1.5, 0)


def test_percentile_is_the_nearest_rank(bench: ModuleType) -> None:
    values = [float(v) for v in range(1, 101)]
    random.Random(3).shuffle(values)
    assert bench.percentile(values, 0.5) == 50.0
    assert bench.percentile(values, 0.99) == 99.0
    assert bench.percentile(values, 1.0) == 100.0
    assert bench.percentile([4.0], 0.99) == 4.0
    assert bench.percentile([1.0, 2.0, 3.0], 0.01) == 1.0
    with pytest.raises(bench.BenchError):
        bench.percentile([], 0.5)
    with pytest.raises(bench.BenchError):
        bench.percentile([1.0], 0.0)


def test_a_check_request_and_its_answers(bench: ModuleType) -> None:
    raw = b"From: a@example.com\r\nSubject: hi\r\n\r\nbody\r\n"
    request = bench.spamc_check_request(raw)
    head, _, body = request.partition(b"\r\n\r\n")
    assert head.split(b"\r\n") == [b"CHECK SPAMC/1.5", b"Content-length: %d" % len(raw)]
    assert body == raw
    assert bench.parse_check_reply(b"SPAMD/1.1 0 EX_OK\r\nContent-length: 0\r\nSpam: True ; 15.2 / 5.0\r\n\r\n") == (
        True,
        15.2,
    )
    assert bench.parse_check_reply(b"SPAMD/1.5 0 EX_OK\r\nSpam: False ; -1.3 / 5.0\r\n\r\n") == (False, -1.3)
    with pytest.raises(bench.BenchError, match="76 EX_PROTOCOL"):
        bench.parse_check_reply(b"SPAMD/1.0 76 EX_PROTOCOL Bad header line\r\n")
    with pytest.raises(bench.BenchError, match="without a Spam header"):
        bench.parse_check_reply(b"SPAMD/1.1 0 EX_OK\r\nContent-length: 0\r\n\r\n")
    with pytest.raises(bench.BenchError, match="not a spamd answer"):
        bench.parse_check_reply(b"HTTP/1.1 200 OK\r\n\r\n")


def test_the_spamc_command_differs_only_in_the_port(bench: ModuleType) -> None:
    one = bench.spamc_check_command("/usr/bin/spamc", 7830, 1 << 20)
    other = bench.spamc_check_command("/usr/bin/spamc", 783, 1 << 20)
    assert [a for a, b in zip(one, other, strict=True) if a != b] == ["7830"]
    assert one[one.index("--dest") + 1] == "127.0.0.1" and "--check" in one


METRICS = """# HELP spam_api_requests_total HTTP requests by endpoint, method and status code.
# TYPE spam_api_requests_total counter
spam_api_requests_total{endpoint="/predict",method="POST",status="200"} 1200.0
spam_api_requests_total{endpoint="/predict/email",method="POST",status="200"} 1100.0
spam_api_requests_total{endpoint="/predict/email",method="POST",status="422"} 3.0
spam_api_requests_total{endpoint="/admin/reload",method="POST",status="200"} 10.0
spam_api_requests_total_created{endpoint="/predict",method="POST",status="200"} 1.7e9
spam_api_prediction_log_dropped_total 2.0
spam_api_prediction_log_dropped_total{pid="12"} 1.0
"""


def test_request_counts_from_metrics(bench: ModuleType) -> None:
    counts = bench.requests_by_status(METRICS, ("/predict", "/predict/email"))
    assert counts == {"200": 2300.0, "422": 3.0}
    assert bench.requests_by_status(METRICS, ("/admin/reload",)) == {"200": 10.0}
    assert bench.metric_total(METRICS, "spam_api_prediction_log_dropped_total") == 3.0
    assert bench.metric_total(METRICS, "absent_total") == 0.0


def samples(bench: ModuleType, rss: list[int], every: float = 2.0, pids: tuple[int, ...] = (1, 2, 3)) -> list[Any]:
    return [bench.RssSample(i * every, value, pids) for i, value in enumerate(rss)]


def test_rss_growth_compares_whole_windows_at_the_half_and_the_end(bench: ModuleType) -> None:
    # 100 s sampled every 2 s: a saw-tooth of period 10 s (a reload) on a flat base compares equal.
    flat = samples(bench, [1000 + (100 if (i % 5) == 0 else 0) for i in range(51)])
    growth, at_half, at_end = bench.rss_growth(flat, 100.0, 10.0)
    assert growth == pytest.approx(0.0, abs=1e-9) and at_half == at_end
    # A steady leak of 1 unit per sample from the start: (mean of 46..50) / (mean of 25..30) - 1.
    leak = samples(bench, [1000 + i for i in range(51)])
    growth, at_half, at_end = bench.rss_growth(leak, 100.0, 10.0)
    assert at_half == pytest.approx(1027.5) and at_end == pytest.approx(1047.5)
    assert growth == pytest.approx(1047.5 / 1027.5 - 1)


def test_rss_growth_refuses_windows_that_do_not_fit_or_hold_nothing(bench: ModuleType) -> None:
    with pytest.raises(bench.BenchError, match="does not fit"):
        bench.rss_growth(samples(bench, [1] * 10), 20.0, 11.0)
    with pytest.raises(bench.BenchError, match="no RSS sample"):
        bench.rss_growth(samples(bench, [1] * 3), 100.0, 10.0)


def soak(bench: ModuleType, **changes: object) -> object:
    figures = {
        "duration": 100.0,
        "connections": 64,
        "reload_every": 10.0,
        "client_answers": 9_990,
        "client_failures": 0,
        "server_by_status": {"200": 10_000.0},
        "logged_rows": 10_000,
        "log_dropped": 0.0,
        "reloads": [200] * 9,
        "samples": samples(bench, [500 * 2**20] * 51),
    }
    figures.update(changes)
    return bench.SoakFigures(**figures)


def verdicts(bench: ModuleType, figures: object) -> list[bool]:
    checks = bench.soak_checks(figures)
    assert [check.name for check in checks] == [
        "soak: non-2xx answers and socket errors",
        "soak: every request logged",
        "soak: RSS growth over the second half",
    ]
    for check in checks:
        assert check.line().endswith("PASS" if check.passed else "MISS")
    return [check.passed for check in checks]


def test_a_clean_soak_passes(bench: ModuleType) -> None:
    assert verdicts(bench, soak(bench)) == [True, True, True]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"client_failures": 1}, [False, True, True]),
        ({"server_by_status": {"200": 10_000.0, "503": 1.0}}, [False, True, True]),
        ({"reloads": [200, 502, 200]}, [False, True, True]),
        ({"reloads": []}, [False, True, True]),
        ({"logged_rows": 9_999}, [True, False, True]),
        ({"log_dropped": 1.0}, [True, False, True]),
        ({"client_answers": 10_001}, [True, False, True]),  # wrk saw more answers than the server gave
        ({"client_answers": 9_000}, [True, False, True]),  # the server answered 1,000 requests no one sent
    ],
)
def test_each_soak_failure_misses_its_check(
    bench: ModuleType, changes: dict[str, object], expected: list[bool]
) -> None:
    assert verdicts(bench, soak(bench, **changes)) == expected


def test_rss_growth_beyond_five_percent_or_a_restarted_worker_misses(bench: ModuleType) -> None:
    base = 500 * 2**20
    growing = [base + (i - 25) * base // 300 if i > 25 else base for i in range(51)]  # +8% by the end
    assert verdicts(bench, soak(bench, samples=samples(bench, growing))) == [True, True, False]
    slight = [base + (i - 25) * base // 1000 if i > 25 else base for i in range(51)]  # +2.5% by the end
    assert verdicts(bench, soak(bench, samples=samples(bench, slight))) == [True, True, True]
    restarted = samples(bench, [base] * 26) + [bench.RssSample(52 + 2 * i, base, (1, 2, 9)) for i in range(25)]
    assert verdicts(bench, soak(bench, samples=restarted)) == [True, True, False]


def test_paired_ratio_is_the_median_of_the_rounds_ratios(bench: ModuleType) -> None:
    def point(rate: float) -> object:
        return bench.Point(completed=round(rate * 10), failed=0, seconds=10.0, p50_ms=1.0, p99_ms=2.0)

    served = [point(500), point(450), point(600)]
    peer = [point(20), point(30), point(20)]
    assert bench.paired_ratio(served, peer) == pytest.approx(25.0)  # 25, 15, 30


def test_the_wrk_script_reads_each_body_from_its_file(bench: ModuleType, tmp_path: Path) -> None:
    body = tmp_path / "m.eml"
    body.write_bytes(b"Subject: x\r\n\r\n]==] CRLF kept\r\n")
    script = bench.wrk_file_script(
        tmp_path / "s.lua", [("/predict/email", "message/rfc822", body), ("/predict", "application/json", body)]
    ).read_text(encoding="utf-8")
    assert f'{{"/predict/email", "message/rfc822", "{body}"}}' in script
    assert f'{{"/predict", "application/json", "{body}"}}' in script
    assert 'io.open(entry[3], "rb")' in script and "CRLF kept" not in script


def test_cpu_ticks_are_read_after_the_command_name(bench: ModuleType) -> None:
    # proc(5): pid (comm) state ppid ... utime (14th field) stime (15th); the name may hold spaces and ')'.
    fields = ["S", "1", "2", "3", "0", "-1", "4194560", "10", "0", "0", "0", "123", "45", "7", "8"]
    assert bench.stat_cpu_ticks(f"4242 (spamd child) {' '.join(fields)} 20 0 1\n") == 168
    assert bench.stat_cpu_ticks(f"7 (a) b) {' '.join(fields)}\n") == 168


def test_cpu_per_message_is_the_servers_cpu_over_its_answers(bench: ModuleType) -> None:
    point = bench.Point(completed=400, failed=0, seconds=10.0, p50_ms=1.0, p99_ms=2.0, server_cpu_seconds=1.2)
    assert point.rate == 40.0 and point.cpu_ms_per_message == pytest.approx(3.0)
    empty = bench.Point(completed=0, failed=5, seconds=10.0, p50_ms=1.0, p99_ms=2.0, server_cpu_seconds=1.2)
    assert empty.rate == 0.0 and empty.cpu_ms_per_message != empty.cpu_ms_per_message  # NaN: nothing answered
