#!/usr/bin/env bash
# Rehearse .github/workflows/pipeline.yml on this machine with the make targets its jobs run:
#   monitor → retrain (dvc repro, push) → gate → export ("build-push") → deploy.sh → promote.
# Job outputs travel as in GitHub Actions: each step appends key=value lines to $GITHUB_OUTPUT and the
# next job reads them. The deploy target is local: deploy/deploy.sh runs unchanged against
# deploy/local-docker.sh (a stand-in `docker` that serves each pushed bundle with the image's command).
#
#   make ci-local                        # monitor decides (MONITOR_ARGS, default --batch data/new)
#   make ci-local FORCE_RETRAIN=true     # workflow_dispatch with force_retrain: skip the monitor
#
# Exit 0 when the chain ran to its end or stopped by decision (no retrain needed, gate rejected);
# non-zero when a step failed (monitor, retrain, gate, export, deploy). Only a deploy that passed
# its health check is followed by `spamfilter promote`, so a failure never moves `champion`.
# KEEP_API=1 leaves the local API running at the end (on API_PORT, default 8800).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
force_retrain="${FORCE_RETRAIN:-false}"
monitor_args="${MONITOR_ARGS:---batch data/new}"
bundle="${BUNDLE:-bundle}"
work="${CI_LOCAL_DIR:-$repo/.ci-local}"
export LOCAL_DOCKER_DIR="$work/docker"
export API_PORT="${API_PORT:-8800}"
export PYTHON="${PYTHON:-$repo/.venv/bin/python}"
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
export DOCKER="$repo/deploy/local-docker.sh"
export DEPLOY_IMAGE="${DEPLOY_IMAGE:-local/spamfilter-api}"
export READY_TIMEOUT="${READY_TIMEOUT:-60}" POLL_INTERVAL="${POLL_INTERVAL:-0.5}"
export DEPLOY_DIR="$work/host"
mkdir -p "$work" "$DEPLOY_DIR" "$LOCAL_DOCKER_DIR"
cp deploy/docker-compose.yml "$DEPLOY_DIR/"

# The value of KEY in a GITHUB_OUTPUT file (last one wins, as in Actions).
output() { sed -n "s/^$2=//p" "$1" | tail -n 1; }
job() { printf '\n== %s\n' "$*"; }
stop_api() { if [ "${KEEP_API:-}" != 1 ]; then "$DOCKER" compose down >/dev/null 2>&1 || true; fi; }
trap stop_api EXIT

job "monitor"
: >"$work/monitor.out"
if [ "$force_retrain" = true ]; then
  echo "force_retrain: skipping the monitor"
  retrain_needed=true
else
  if ! GITHUB_OUTPUT="$work/monitor.out" make --no-print-directory monitor MONITOR_ARGS="$monitor_args"; then
    echo "ci-local: the monitor failed; the chain stops (no alias moved)" >&2
    exit 1
  fi
  retrain_needed="$(output "$work/monitor.out" retrain_needed)"
fi
echo "retrain_needed=$retrain_needed"
if [ "$retrain_needed" != true ]; then
  echo "ci-local: no retrain needed; the chain ends here"
  exit 0
fi

job "retrain"
: >"$work/retrain.out"
make --no-print-directory retrain
if ! GITHUB_OUTPUT="$work/retrain.out" make --no-print-directory gate; then
  echo "ci-local: the gate failed; the chain stops (no alias moved)" >&2
  exit 1
fi
deploy_needed="$(output "$work/retrain.out" deploy_needed)"
version="$(output "$work/retrain.out" challenger_version)"
echo "deploy_needed=$deploy_needed challenger_version=$version"
if [ "$deploy_needed" != true ]; then
  echo "ci-local: the gate rejected v$version; nothing to deploy, champion unchanged"
  exit 0
fi

job "build-push"
tag="$(git rev-parse --short=12 HEAD 2>/dev/null || echo local)-v$version"
make --no-print-directory export BUNDLE="$bundle" VERSION="$version"
# "docker build && docker push": the image is the bundle, stored where the stand-in docker pulls from.
rm -rf "$LOCAL_DOCKER_DIR/images/$tag"
mkdir -p "$LOCAL_DOCKER_DIR/images/$tag"
cp -R "$bundle" "$LOCAL_DOCKER_DIR/images/$tag/bundle"
echo "pushed $DEPLOY_IMAGE:$tag"

job "deploy"
if ! DEPLOY_TAG="$tag" EXPECTED_VERSION="$version" make --no-print-directory deploy; then
  echo "ci-local: the deploy failed (rolled back); not promoting, champion unchanged" >&2
  exit 1
fi
make --no-print-directory promote REASON="deployed $DEPLOY_IMAGE:$tag (ci-local) after the gate passed"
echo "ci-local: v$version is deployed and champion"
