"""`python -m api`: the server's entry point (the Docker image's command).

Runs uvicorn (uvloop, httptools) with WORKERS processes on HOST:PORT; with SPAMD_PORT set, each
worker also listens there for spamc (the port shared through SO_REUSEPORT). Before the workers start
it makes the run directory they share (reload signal, Prometheus multiprocess files) and creates the
prediction-log tables once, or brings an older log up to the current schema, so workers do not race
to do it (when the database is down then, the server starts all the same and each worker's log
writer does it later).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import uvicorn

from api.settings import ApiSettings


def log_config(level: str) -> dict[str, object]:
    config = dict(uvicorn.config.LOGGING_CONFIG)
    config["loggers"] = {
        **uvicorn.config.LOGGING_CONFIG["loggers"],
        "api": {"handlers": ["default"], "level": level.upper(), "propagate": False},
        "spamfilter": {"handlers": ["default"], "level": level.upper(), "propagate": False},
    }
    return config


def main() -> int:
    settings = ApiSettings()
    if not settings.model_sources():
        print("error: no channel to serve: MODEL_URI is empty and the e-mail channel is off", file=sys.stderr)
        return 1
    owned_run_dir = None
    if not settings.run_dir:
        owned_run_dir = tempfile.mkdtemp(prefix="spamfilter-api-")
        os.environ["API_RUN_DIR"] = owned_run_dir
    run_dir = Path(os.environ["API_RUN_DIR"])
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        metrics_dir = run_dir / "prometheus"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    if settings.prediction_log_url:
        from sqlalchemy.exc import SQLAlchemyError

        from api.prediction_log import open_log

        try:
            open_log(settings.prediction_log_url).dispose()
        except SQLAlchemyError as exc:
            print(f"warning: prediction log unreachable at start-up; serving, and retrying it: {exc}", file=sys.stderr)
    try:
        uvicorn.run(
            "api.main:create_app",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            loop="uvloop",
            http="httptools",
            log_level=settings.log_level.lower(),
            log_config=log_config(settings.log_level),
            access_log=settings.access_log,
            timeout_graceful_shutdown=10,
        )
    finally:
        if owned_run_dir:
            shutil.rmtree(owned_run_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
