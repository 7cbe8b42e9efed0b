"""Pipeline wall time on the real corpora, in a fresh copy of the repo (installed venv, empty DVC
cache and MLflow store), both channels as params.yaml configures them:

  cold `dvc repro` of both channels' four stages (target <= 120 s on 2 cores)
  no-op `dvc repro` (target <= 3 s)
  `--channel sms` or `--channel email` times one channel's stages alone (`dvc repro evaluate@<channel>`)

Each figure is the median over all its runs (three no-op repros per fresh copy), never the minimum:
the minimum reports the luckiest run, not what a user waits for.

    python bench/pipeline.py [--corpus PATH] [--mail-corpus PATH] [--repeats 3] [--channel sms|email]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from tests.conftest import SHARED_CORPUS, Project, make_project  # noqa: E402 - the same isolated copy the tests use

SHARED_MAIL = REPO_ROOT.parent / "shared" / "data" / "datasets-spam-assassin-0.2.3.tgz"
NOOP_PER_COPY = 3
COLD_TARGET = {"both": 120.0, "sms": 30.0, "email": 120.0}


def timed(project: Project, *args: str) -> float:
    started = time.perf_counter()
    project.dvc(*args)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=SHARED_CORPUS)
    parser.add_argument("--mail-corpus", type=Path, default=SHARED_MAIL)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--channel", choices=["sms", "email"], default=None, help="time one channel's stages only")
    args = parser.parse_args()

    channels = (args.channel,) if args.channel else ("sms", "email")
    target_key = args.channel or "both"
    cold_times: list[float] = []
    noop_times: list[float] = []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            env = {"SPAM_DATA": str(args.corpus), "SPAM_EMAIL_DATA": str(args.mail_corpus)}
            project = make_project(Path(tmp) / "repo", env, channels=channels)
            for channel in channels:
                project.spamfilter("data", "--channel", channel)
            cold_times.append(timed(project, "repro"))
            noop_times.extend(timed(project, "repro") for _ in range(NOOP_PER_COPY))
        print(
            f"run: cold {cold_times[-1]:.1f} s, no-op {', '.join(f'{t:.2f}' for t in noop_times[-NOOP_PER_COPY:])} s",
            flush=True,
        )

    cold, noop = statistics.median(cold_times), statistics.median(noop_times)
    target = COLD_TARGET[target_key]
    stages = 4 * len(channels)
    print(
        f"cold dvc repro ({stages} stages, channels {', '.join(channels)}, real corpora): median {cold:.1f} s over "
        f"{args.repeats} runs (target <= {target:.0f} s): {'PASS' if cold <= target else 'FAIL'}"
    )
    print(
        f"no-op dvc repro: median {noop:.2f} s over {len(noop_times)} runs (target <= 3 s): {'PASS' if noop <= 3 else 'FAIL'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
