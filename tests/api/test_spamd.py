"""The spamd listener: the score mapping and wire format as pure functions, then the listener itself on loopback,
spoken to with raw sockets: every command, every limit, and each kind of bad input."""

from __future__ import annotations

import itertools
import re
import socket
import time
import zlib

import pytest

from api import spamd_protocol
from api.spamd import ScorerNotReadyError, SpamdSettings
from api.spamd_protocol import (
    Command,
    EmailVerdict,
    InvalidVerdictError,
    RequestError,
    Status,
    add_headers,
    header_block,
    parse_headers,
    parse_request_line,
    score_message,
    spam_score,
    symbols,
    tell_request,
)
from spamfilter.errors import ConfigError, SpamfilterError
from tests.api.spamd_support import (
    HAM,
    SPAM,
    BlockingScorer,
    FeedbackLog,
    connect,
    exchange,
    failing_scorer,
    keyword_scorer,
    parse_response,
    read_to_eof,
    request,
    running_spamd,
)

pytestmark = pytest.mark.timeout(120)

PROBABILITIES = sorted({i / 1000 for i in range(1001)} | {1e-9, 1e-7, 0.4999999, 0.5000001, 1 - 1e-9})
THRESHOLDS = (0.0, 1e-7, 0.05, 0.3, 0.5, 0.5000001, 0.77, 0.95, 0.999, 1.0)


# --- the score ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("required", [5.0, 3.5, 10.0, 0.0, -2.0])
@pytest.mark.parametrize("threshold", THRESHOLDS)
def test_score_reaches_required_exactly_when_p_reaches_threshold(threshold: float, required: float) -> None:
    for p in PROBABILITIES:
        score = spam_score(p, threshold, required)
        printed = float(f"{score:.1f}")  # what the client parses
        assert (score >= required) == (p >= threshold), (p, threshold, score)
        assert (printed >= required) == (p >= threshold), (p, threshold, printed)


@pytest.mark.parametrize("threshold", THRESHOLDS)
def test_score_never_decreases_as_p_grows(threshold: float) -> None:
    scores = [spam_score(p, threshold, 5.0) for p in PROBABILITIES]
    assert all(a <= b for a, b in itertools.pairwise(scores))
    assert all(abs(s - 5.0) < 28 for s in scores)  # the clamp keeps p and t of 0 or 1 finite (2 x 13.8)


def test_score_is_one_log_odds_unit_per_point() -> None:
    # Odds of spam multiplied by e add one point (away from the rounding and the hold at the threshold).
    p = 0.2
    odds = p / (1 - p) * 2.718281828459045
    assert spam_score(odds / (1 + odds), 0.5, 5.0) == pytest.approx(spam_score(p, 0.5, 5.0) + 1.0, abs=0.1)


def test_the_module_docstring_table_is_what_the_function_computes() -> None:
    doc = spamd_protocol.__doc__ or ""
    p_row = re.search(r"t = 0\.5:\s+p\s+([-\d. ]+)\n\s+score\s+([-\d. ]+)\n", doc)
    assert p_row is not None
    probabilities = [float(x) for x in p_row.group(1).split()]
    documented = [float(x) for x in p_row.group(2).split()]
    assert len(probabilities) == len(documented) >= 10
    assert [spam_score(p, 0.5, 5.0) for p in probabilities] == documented
    assert spam_score(0.29, 0.3, 5.0) == 4.9 and spam_score(0.3, 0.3, 5.0) == 5.0 and spam_score(0.5, 0.3, 5.0) == 5.8


def test_symbols_name_the_model_and_one_band() -> None:
    low, high = symbols(EmailVerdict(0.003, 0.5, "v")), symbols(EmailVerdict(0.9995, 0.5, "v"))
    assert low == ["SPAMFILTER_EMAIL", "SPAMFILTER_P00"]
    assert high == ["SPAMFILTER_EMAIL", "SPAMFILTER_P999"]
    bands = [symbols(EmailVerdict(p, 0.5, "v")) for p in PROBABILITIES]
    assert len({tuple(b) for b in bands}) == len(spamd_protocol.BANDS)


@pytest.mark.parametrize("bad", [float("nan"), -0.1, 1.5, float("inf")])
def test_a_verdict_must_hold_probabilities(bad: float) -> None:
    with pytest.raises(InvalidVerdictError, match="p_spam"):
        EmailVerdict(bad, 0.5, "v")
    with pytest.raises(InvalidVerdictError, match="threshold"):
        EmailVerdict(0.5, bad, "v")
    assert issubclass(InvalidVerdictError, SpamfilterError)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("required_score", 5.05),
        ("required_score", float("nan")),
        ("max_message_bytes", 0),
        ("read_timeout", 0.0),
        ("request_timeout", float("inf")),
        ("max_children", 0),
        ("max_connections", 2),
    ],
)
def test_settings_refuse_nonsense(field: str, value: float) -> None:
    with pytest.raises(ConfigError, match=field):
        SpamdSettings(**{field: value})  # type: ignore[arg-type]


# --- parsing requests ---------------------------------------------------------------------------------------------


def test_request_lines() -> None:
    assert parse_request_line(b"CHECK SPAMC/1.5\r\n") == (Command.CHECK, (1, 5))
    assert parse_request_line(b"REPORT_IFSPAM SPAMC/1.2\n") == (Command.REPORT_IFSPAM, (1, 2))
    assert parse_request_line(b"PING SPAMC/1.5") == (Command.PING, (1, 5))
    for bad, words in [
        (b"FROB SPAMC/1.5\r\n", "unknown command 'FROB'"),
        (b"GET / HTTP/1.1\r\n", "bad request line"),
        (b"CHECK SPAMD/1.5\r\n", "bad request line"),
        (b"check SPAMC/1.5\r\n", "bad request line"),
        (b"\x00\xff\xfe garbage\r\n", "bad request line"),
    ]:
        with pytest.raises(RequestError, match=re.escape(words)) as caught:
            parse_request_line(bad)
        assert caught.value.status is Status.EX_PROTOCOL


def test_headers() -> None:
    parsed = parse_headers(
        [b"Content-length: 42\r\n", b"User: mail\r\n", b"X-Unknown: kept out\r\n", b"Message-class: SPAM\r\n"]
    )
    assert (parsed.content_length, parsed.user, parsed.message_class) == (42, "mail", "spam")
    assert parse_headers([b"Compress: zlib\r\n"]).compress
    flags = parse_headers([b"Set: local, remote\r\n", b"Remove: remote\r\n"])
    assert (flags.set_local, flags.set_remote, flags.remove_local, flags.remove_remote) == (True, True, False, True)
    for bad, words in [
        ([b"Content-length: -1\r\n"], "not a byte count"),
        ([b"Content-length: 1e3\r\n"], "not a byte count"),
        ([b"Content-length: 10\r\n", b"Content-length: 11\r\n"], "two Content-length"),
        ([b"Compress: gzip\r\n"], "compression type not supported"),
        ([b"Message-class: maybe\r\n"], "Message-class must be spam or ham"),
        ([b"User: a\x01b\r\n"], "control characters"),
        ([b"no colon here\r\n"], "'Name: value' format"),
        ([b"X: y\r\n"] * 256, "too many headers"),
    ]:
        with pytest.raises(RequestError, match=words) as caught:
            parse_headers(bad)
        assert caught.value.status is Status.EX_PROTOCOL


def test_tell_requests() -> None:
    assert tell_request(parse_headers([b"Message-class: ham\r\n", b"Set: local\r\n"])).learn == "ham"
    assert tell_request(parse_headers([b"Remove: local\r\n"])).forget
    for contradictory in (
        [b"Message-class: spam\r\n", b"Set: local\r\n", b"Remove: local\r\n"],
        [b"Set: remote\r\n", b"Remove: remote\r\n"],
        [b"Set: local\r\n"],
    ):
        with pytest.raises(RequestError) as caught:
            tell_request(parse_headers(contradictory))
        assert caught.value.status is Status.EX_PROTOCOL


# --- the message --------------------------------------------------------------------------------------------------

ADDED = [("X-Spam-Flag", "YES"), ("X-Spam-Score", "7.5")]


@pytest.mark.parametrize(
    ("message", "prefix", "eol"),
    [
        (b"Subject: a\nFrom: b\n\nbody\n", b"", b"\n"),
        (b"Subject: a\r\nFrom: b\r\n\r\nbody\r\n", b"", b"\r\n"),
        (b"Subject: a\r\n\r\nno final newline", b"", b"\r\n"),
        (b"From someone@example.com Mon Jan  1 00:00:00 2024\nSubject: a\n\nbody\n", b"From someone", b"\n"),
        (b"Subject: only headers\n", b"", b"\n"),
        (b"just one line", b"", b"\n"),
        (b"", b"", b"\n"),
    ],
)
def test_headers_go_on_top_and_nothing_else_changes(message: bytes, prefix: bytes, eol: bytes) -> None:
    out = add_headers(message, ADDED)
    block = b"X-Spam-Flag: YES" + eol + b"X-Spam-Score: 7.5" + eol
    at = out.find(block)
    assert at >= 0 and out[:at].startswith(prefix)
    assert out[:at] + out[at + len(block) :] == message


def test_header_block_stops_at_the_first_blank_line() -> None:
    assert header_block(b"A: 1\r\nB: 2\r\n\r\nbody\r\n\r\nmore") == b"A: 1\r\nB: 2\r\n\r\n"
    assert header_block(b"A: 1\n\nbody") == b"A: 1\n\n"
    assert header_block(b"A: 1\n") == b"A: 1\n"


# --- the listener, over raw sockets --------------------------------------------------------------------------------


def scored(message: bytes) -> spamd_protocol.ScoredMessage:
    return score_message(keyword_scorer(message), 5.0)


def spam_header(message: bytes) -> str:
    result = scored(message)
    return f"{'True' if result.verdict.is_spam else 'False'} ; {result.score:.1f} / 5.0"


def test_check_symbols_report() -> None:
    with running_spamd() as spamd:
        for message in (SPAM, HAM):
            check = parse_response(exchange(spamd.port, request("CHECK", message)))
            assert (check.status, check.headers, check.body) == (
                "SPAMD/1.1 0 EX_OK",
                {"Spam": spam_header(message)},
                b"",
            )

            sym = parse_response(exchange(spamd.port, request("SYMBOLS", message)))
            assert sym.body == ",".join(scored(message).symbols).encode()
            assert sym.headers == {"Content-length": str(len(sym.body)), "Spam": spam_header(message)}

            rep = parse_response(exchange(spamd.port, request("REPORT", message)))
            assert int(rep.headers["Content-length"]) == len(rep.body)
            assert f"({scored(message).score:.1f} points, 5.0 required)".encode() in rep.body

        if_spam = parse_response(exchange(spamd.port, request("REPORT_IFSPAM", SPAM)))
        assert if_spam.headers["Spam"].startswith("True") and b"SPAMFILTER_P999" in if_spam.body
        if_ham = parse_response(exchange(spamd.port, request("REPORT_IFSPAM", HAM)))
        assert (if_ham.headers, if_ham.body) == ({"Content-length": "0", "Spam": spam_header(HAM)}, b"")


@pytest.mark.parametrize("message", [SPAM, HAM, HAM.rstrip(b"\r\n"), b"From x@y Mon Jan  1 2024\n" + SPAM])
def test_process_and_headers_add_three_headers_and_keep_every_byte(message: bytes) -> None:
    with running_spamd() as spamd:
        processed = parse_response(exchange(spamd.port, request("PROCESS", message)))
        headers_only = parse_response(exchange(spamd.port, request("HEADERS", message)))
    assert processed.headers == {"Content-length": str(len(processed.body)), "Spam": spam_header(message)}
    eol = b"\r\n" if b"\r\n" in message else b"\n"
    added = [line for line in processed.body.split(eol) if line.startswith(b"X-Spam-")]
    expected_names = [b"X-Spam-Flag", b"X-Spam-Status", b"X-Spam-Score"]
    if not scored(message).verdict.is_spam:
        expected_names.remove(b"X-Spam-Flag")
    assert [line.split(b":")[0] for line in added] == expected_names
    assert b"X-Spam-Score: " + f"{scored(message).score:.1f}".encode() in added
    block = eol.join(added) + eol
    assert processed.body.replace(block, b"", 1) == message
    assert headers_only.body == header_block(processed.body)
    assert headers_only.body.endswith(eol + eol)


def test_old_protocol_versions_get_old_shapes() -> None:
    with running_spamd() as spamd:
        v12 = parse_response(exchange(spamd.port, request("PROCESS", SPAM, version="1.2")))
        assert list(v12.headers) == ["Content-length"] and v12.body.endswith(SPAM)
        symbols_v12 = parse_response(exchange(spamd.port, request("SYMBOLS", SPAM, version="1.2")))
        assert "Content-length" not in symbols_v12.headers and symbols_v12.body.endswith(b"\r\n")
        # SPAMC/1.0 has no headers: the message follows the request line and runs to the end of input.
        v10 = exchange(spamd.port, b"PROCESS SPAMC/1.0\r\n" + SPAM)
        assert v10.startswith(b"SPAMD/1.0 0 EX_OK\r\nX-Spam-Flag: YES\n") and v10.endswith(SPAM)


def test_no_content_length_reads_to_the_end_of_input() -> None:
    # Haraka and qmail's spamd clients send no Content-length and end their side of the connection instead.
    with running_spamd() as spamd:
        answer = parse_response(exchange(spamd.port, request("CHECK", SPAM, version="1.4", headers={"User": "x"})))
        assert answer.headers["Spam"] == spam_header(SPAM)


def test_ping_answers_at_once_and_skip_answers_nothing() -> None:
    with running_spamd() as spamd, connect(spamd.port) as sock:
        sock.sendall(b"PING SPAMC/1.2\r\n")  # no blank line, no end of input: the old clients' PING
        assert sock.recv(100) == b"SPAMD/1.5 0 PONG\r\n"
        assert exchange(spamd.port, b"PING SPAMC/1.5\r\n\r\n") == b"SPAMD/1.5 0 PONG\r\n"
        assert exchange(spamd.port, b"SKIP SPAMC/1.5\r\n\r\n") == b""


def test_tell_learns_forgets_and_says_what_it_did() -> None:
    log = FeedbackLog()
    learn = {"Message-class": "spam", "Set": "local", "Content-length": str(len(SPAM))}
    forget = {"Remove": "local", "Content-length": str(len(SPAM))}
    with running_spamd(feedback=log) as spamd:
        first = parse_response(exchange(spamd.port, request("TELL", SPAM, headers=learn)))
        again = parse_response(exchange(spamd.port, request("TELL", SPAM, headers=learn)))
        gone = parse_response(exchange(spamd.port, request("TELL", SPAM, headers=forget)))
        remote = parse_response(exchange(spamd.port, request("TELL", SPAM, headers={**learn, "Set": "remote"})))
    assert first.headers == {"Content-length": "0", "DidSet": "local"}
    assert again.headers == {"Content-length": "0"}  # already learned: spamc prints "already un/learned"
    assert gone.headers == {"Content-length": "0", "DidRemove": "local"}
    assert remote.headers == {"Content-length": "0"} and remote.code == 0
    assert log.calls == [(SPAM, "spam"), (SPAM, "spam"), (SPAM, "forget")]


def test_tell_is_refused_without_feedback_or_when_contradictory() -> None:
    with running_spamd() as spamd:
        off = parse_response(
            exchange(spamd.port, request("TELL", SPAM, headers={"Message-class": "spam", "Set": "local"}))
        )
    assert off.code == Status.EX_UNAVAILABLE and "not been enabled" in off.status
    log = FeedbackLog()
    with running_spamd(feedback=log) as spamd:
        both = {"Message-class": "spam", "Set": "local", "Remove": "local", "Content-length": str(len(SPAM))}
        contradictory = parse_response(exchange(spamd.port, request("TELL", SPAM, headers=both)))
    assert contradictory.code == Status.EX_PROTOCOL and log.calls == []


def test_compressed_messages() -> None:
    packed = zlib.compress(SPAM)
    with running_spamd(settings=SpamdSettings(max_message_bytes=4096)) as spamd:
        ok = parse_response(
            exchange(
                spamd.port, request("CHECK", packed, headers={"Compress": "zlib", "Content-length": str(len(packed))})
            )
        )
        assert ok.headers["Spam"] == spam_header(SPAM)
        bomb = zlib.compress(b"A" * 5_000_000)  # 5 MB of "A" in a few KB
        refused = parse_response(
            exchange(spamd.port, request("CHECK", bomb, headers={"Compress": "zlib", "Content-length": str(len(bomb))}))
        )
        assert refused.code == Status.EX_UNAVAILABLE and "exceeds limit" in refused.status
        corrupt = b"not zlib at all"
        bad = parse_response(
            exchange(spamd.port, request("CHECK", corrupt, headers={"Compress": "zlib", "Content-length": "15"}))
        )
        assert bad.code == Status.EX_UNAVAILABLE and "zlib" in bad.status
        unsized = parse_response(exchange(spamd.port, request("CHECK", packed, headers={"Compress": "zlib"})))
        assert unsized.code == Status.EX_PROTOCOL
        gzip = parse_response(exchange(spamd.port, request("CHECK", packed, headers={"Compress": "gzip"})))
        assert gzip.code == Status.EX_PROTOCOL


# --- bad input -----------------------------------------------------------------------------------------------------

FAST = SpamdSettings(read_timeout=0.3, max_message_bytes=10_000)


@pytest.mark.parametrize(
    ("raw", "code", "words"),
    [
        (b"CHECK SPAMC/1.5\r\nContent-length: 10\r\n", Status.EX_PROTOCOL, "EOF during headers"),
        (b"CHECK SPAMC/1.5\r\nContent-length: 100\r\n\r\nshort", Status.EX_PROTOCOL, "expected 100 bytes, got 5"),
        (b"CHECK SPAMC/1.5\r\nContent-length: ten\r\n\r\n", Status.EX_PROTOCOL, "not a byte count"),
        (b"CHEKC SPAMC/1.5\r\n\r\n", Status.EX_PROTOCOL, "unknown command"),
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", Status.EX_PROTOCOL, "bad request line"),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n", Status.EX_PROTOCOL, "bad request line"),  # TLS hello
        (b"x" * 70_000, Status.EX_PROTOCOL, "longer than"),
        (b"CHECK SPAMC/1.5\r\nContent-length: 20000\r\n\r\n", Status.EX_UNAVAILABLE, "exceeds limit (20000 > 10000"),
        (b"CHECK SPAMC/1.5\r\n\r\n" + b"y" * 20_000, Status.EX_UNAVAILABLE, "exceeds limit (10000 bytes)"),
        (b"CHECK SPAMC/1.5\r\nBad header\r\n\r\n", Status.EX_PROTOCOL, "'Name: value' format"),
        (b"", Status.EX_PROTOCOL, "closed before the request line"),
    ],
)
def test_bad_requests_get_a_status_line_and_a_closed_connection(raw: bytes, code: Status, words: str) -> None:
    with running_spamd(settings=FAST) as spamd:
        answer = exchange(spamd.port, raw)
        again = exchange(spamd.port, request("CHECK", SPAM))  # and the listener goes on
    assert answer.endswith(b"\r\n") and answer.count(b"\r\n") == 1, answer
    status = answer.decode("ascii")
    assert status.startswith(f"SPAMD/1.1 {int(code)} {code.name} ") and words in status, status
    assert parse_response(again).headers["Spam"] == spam_header(SPAM)


@pytest.mark.parametrize(
    ("sent", "code", "words"),
    [
        (b"", Status.EX_TIMEOUT, "timeout reading the request line"),
        (b"CHECK SPAMC/1.5\r\nContent-length: 5\r\n", Status.EX_TIMEOUT, "timeout reading the request headers"),
        (b"CHECK SPAMC/1.5\r\nContent-length: 50\r\n\r\nhalf", Status.EX_PROTOCOL, "expected 50 bytes, got 4 before"),
        (b"CHECK SPAMC/1.5\r\n\r\nno length, no end", Status.EX_PROTOCOL, "neither sent more nor ended"),
    ],
)
def test_a_silent_client_is_dropped(sent: bytes, code: Status, words: str) -> None:
    with running_spamd(settings=FAST) as spamd, connect(spamd.port) as sock:
        sock.sendall(sent)  # and then nothing, with the connection left open
        answer = read_to_eof(sock).decode("ascii")
    assert answer.startswith(f"SPAMD/1.1 {int(code)} {code.name}") and words in answer, answer


def test_bytes_past_content_length_are_ignored() -> None:
    with running_spamd() as spamd:
        answer = parse_response(
            exchange(spamd.port, request("CHECK", HAM, headers={"Content-length": str(len(HAM))}) + SPAM)
        )
    assert answer.headers["Spam"] == spam_header(HAM)


def test_a_failing_scorer_costs_one_request() -> None:
    with running_spamd(scorer=failing_scorer) as spamd:
        answers = [exchange(spamd.port, request("CHECK", SPAM)) for _ in range(3)]
    assert answers == [b"SPAMD/1.1 70 EX_SOFTWARE scorer failed (see the server log)\r\n"] * 3

    def wrong_type(raw: bytes) -> EmailVerdict:
        return 0.9  # type: ignore[return-value]

    with running_spamd(scorer=wrong_type) as spamd:
        assert parse_response(exchange(spamd.port, request("CHECK", SPAM))).code == Status.EX_SOFTWARE


def test_a_scorer_not_ready_asks_to_try_again() -> None:
    def not_ready(raw: bytes) -> EmailVerdict:
        raise ScorerNotReadyError("no model loaded yet: the registry is unreachable")

    with running_spamd(scorer=not_ready) as spamd:
        answer = exchange(spamd.port, request("CHECK", SPAM))
    assert answer == b"SPAMD/1.1 75 EX_TEMPFAIL no model loaded yet: the registry is unreachable\r\n"


def test_a_slow_scorer_blocks_nothing_else() -> None:
    """While one request's scorer is stuck in its thread, the event loop still answers PING and scores others."""
    scorer = BlockingScorer()
    with (
        running_spamd(scorer=scorer, settings=SpamdSettings(max_children=2)) as spamd,
        connect(spamd.port) as stuck,
    ):
        stuck.sendall(request("CHECK", SPAM))
        stuck.shutdown(socket.SHUT_WR)
        scorer.wait_entered()  # the first request is inside the scorer, holding its thread
        assert exchange(spamd.port, b"PING SPAMC/1.5\r\n\r\n") == b"SPAMD/1.5 0 PONG\r\n"
        with connect(spamd.port) as second:
            second.sendall(request("CHECK", HAM))
            second.shutdown(socket.SHUT_WR)
            scorer.wait_entered()  # the second one is scored beside it
            scorer.release.set()
            assert parse_response(read_to_eof(second)).headers["Spam"] == spam_header(HAM)
        assert parse_response(read_to_eof(stuck)).headers["Spam"] == spam_header(SPAM)


def test_extra_connections_wait_then_overflow_gets_tempfail() -> None:
    scorer = BlockingScorer()
    with (
        running_spamd(scorer=scorer, settings=SpamdSettings(max_children=1, max_connections=2)) as spamd,
        connect(spamd.port) as working,
        connect(spamd.port) as waiting,
    ):
        working.sendall(request("CHECK", SPAM))
        working.shutdown(socket.SHUT_WR)
        scorer.wait_entered()
        waiting.sendall(request("CHECK", HAM))
        waiting.shutdown(socket.SHUT_WR)
        while spamd.open_connections() < 2:  # until the server has taken the waiting one in
            time.sleep(0.01)
        overflow = exchange(spamd.port, request("CHECK", HAM))
        assert overflow.startswith(b"SPAMD/1.1 75 EX_TEMPFAIL ")
        scorer.release.set()
        assert parse_response(read_to_eof(working)).headers["Spam"] == spam_header(SPAM)
        assert parse_response(read_to_eof(waiting)).headers["Spam"] == spam_header(HAM)


def test_a_request_over_its_time_gets_ex_timeout_and_serving_goes_on() -> None:
    scorer = BlockingScorer()
    with running_spamd(scorer=scorer, settings=SpamdSettings(request_timeout=0.5, max_children=1)) as spamd:
        late = exchange(spamd.port, request("CHECK", SPAM))
        scorer.release.set()  # the stuck thread finishes; the next request gets it
        after = parse_response(exchange(spamd.port, request("CHECK", HAM)))
    assert late.startswith(b"SPAMD/1.1 79 EX_TIMEOUT request not done within 0.5 s")
    assert after.headers["Spam"] == spam_header(HAM)


def test_close_stops_listening() -> None:
    with running_spamd() as spamd:
        port = spamd.port
        assert exchange(port, b"PING SPAMC/1.5\r\n\r\n").startswith(b"SPAMD/1.5 0 PONG")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
