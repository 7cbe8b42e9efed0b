#!/usr/bin/env bash
# Rehearse .github/workflows/pipeline.yml on this machine, for every channel params.yaml configures, with
# the steps its jobs run (deploy/pipeline.sh, the make targets):
#   monitor → retrain (dvc repro, push) → gate → record → export ("build-push") → deploy.sh → promote.
# Job outputs travel as in GitHub Actions: each step appends key=value lines to a GITHUB_OUTPUT file and
# the next job reads them. Each channel decides alone: one channel's quiet monitor, rejection or failure
# does not stop another's deploy, and the image always carries every channel (a channel that is not
# deployed anew ships its current champion). The deploy target is local: deploy/deploy.sh runs
# unchanged against deploy/local-docker.sh (a stand-in `docker` serving each pushed bundle with the
# image's command). What a retrain would put in its pull request is committed on a local branch
# (ci-local/retrain-<time>) without touching the checkout.
#
#   make ci-local                        # each channel's monitor decides (MONITOR_ARGS, default
#                                        # "--batch data/new/{channel}"; no reference profile ⇒ train)
#   make ci-local FORCE_RETRAIN=true     # workflow_dispatch with force_retrain: skip the monitors
#
# Exit 0 when the chain ran to its end or stopped by decision (no retrain needed, every gate rejected);
# non-zero when a step failed for any channel (monitor, retrain, gate, export, deploy, promote). Only a
# deploy that passed its health check is followed by `spamfilter promote`, and only for the channels
# whose gate passed, so a failure never moves `champion`.
# KEEP_API=1 leaves the local API running at the end (on API_PORT, default 8800).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
work="${CI_LOCAL_DIR:-$repo/.ci-local}"
export BUNDLE="${BUNDLE:-bundle}"
export MONITOR_PULL="${MONITOR_PULL:-true}"
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
# shellcheck disable=SC2329  # invoked by the EXIT trap
stop_api() { if [ "${KEEP_API:-}" != 1 ]; then "$DOCKER" compose down >/dev/null 2>&1 || true; fi; }
trap stop_api EXIT
status=0

job "monitor"
: >"$work/monitor.out"
if ! GITHUB_OUTPUT="$work/monitor.out" deploy/pipeline.sh monitor; then
  failed="$(output "$work/monitor.out" failed_channels)"
  if [ -z "$failed" ]; then
    echo "ci-local: the monitor step failed (see above); the chain stops (no alias moved)" >&2
    exit 1
  fi
  echo "ci-local: the monitor failed for: $failed; those channels stop here (no alias moved)" >&2
  status=1
fi
retrain_channels="$(output "$work/monitor.out" retrain_channels)"
echo "retrain_needed=$(output "$work/monitor.out" retrain_needed) retrain_channels=$retrain_channels"
if [ -z "$retrain_channels" ]; then
  echo "ci-local: no retrain needed; the chain ends here"
  exit "$status"
fi

job "retrain: $retrain_channels"
: >"$work/retrain.out"
if ! GITHUB_OUTPUT="$work/retrain.out" RETRAIN_CHANNELS="$retrain_channels" deploy/pipeline.sh retrain; then
  failed="$(output "$work/retrain.out" failed_channels)"
  if [ -z "$failed" ]; then
    echo "ci-local: the retrain step failed (see above); the chain stops (no alias moved)" >&2
    exit 1
  fi
  echo "ci-local: retraining or the gate failed for: $failed; those channels stop here (no alias moved)" >&2
  status=1
fi
trained="$(output "$work/retrain.out" trained_channels)"
promote_channels="$(output "$work/retrain.out" promote_channels)"
challenger_versions="$(output "$work/retrain.out" challenger_versions)"
for channel in $(output "$work/retrain.out" rejected_channels); do
  echo "ci-local: the gate rejected $channel's challenger; $channel keeps its champion"
done
# The pull request of the workflow (cml pr create), here a local branch.
GITHUB_OUTPUT="$work/retrain.out" RECORD_CHANNELS="$trained" RECORD_SUMMARY="$(output "$work/retrain.out" summary)" \
  deploy/pipeline.sh record
echo "deploy_needed=$(output "$work/retrain.out" deploy_needed) challenger_versions=$challenger_versions"
if [ "$(output "$work/retrain.out" deploy_needed)" != true ]; then
  echo "ci-local: no challenger passed its gate; nothing to deploy, champions unchanged"
  exit "$status"
fi

job "build-push"
: >"$work/build.out"
if ! GITHUB_OUTPUT="$work/build.out" CHALLENGER_VERSIONS="$challenger_versions" deploy/pipeline.sh export; then
  echo "ci-local: exporting the bundles failed; no image, nothing deployed, champions unchanged" >&2
  exit 1
fi
expected="$(output "$work/build.out" expected_versions)"
tag="$(git rev-parse --short=12 HEAD 2>/dev/null || echo local)-$(output "$work/build.out" models_tag)"
# "docker build && docker push": the image is the bundles, stored where the stand-in docker pulls from.
rm -rf "$LOCAL_DOCKER_DIR/images/$tag"
mkdir -p "$LOCAL_DOCKER_DIR/images/$tag"
cp -R "$BUNDLE" "$LOCAL_DOCKER_DIR/images/$tag/bundle"
echo "pushed $DEPLOY_IMAGE:$tag ($expected)"

job "deploy"
if ! DEPLOY_TAG="$tag" EXPECTED_VERSIONS="$expected" make --no-print-directory deploy; then
  echo "ci-local: the deploy failed (rolled back); not promoting, champions unchanged" >&2
  exit 1
fi
if ! PROMOTE_CHANNELS="$promote_channels" PROMOTE_REASON="deployed $DEPLOY_IMAGE:$tag (ci-local) after the gate passed" \
  deploy/pipeline.sh promote; then
  status=1
fi
echo "ci-local: deployed $DEPLOY_IMAGE:$tag serving $expected; promoted: $promote_channels"
exit "$status"
