#!/usr/bin/env bash
# Deploy one image tag of the API on this host (the EC2 instance), or roll back.
#
#   DEPLOY_IMAGE=user/spamfilter-api DEPLOY_TAG=<git sha> EXPECTED_VERSIONS="sms=3 email=2" ./deploy.sh
#
# Pulls the tag, brings it up with docker compose (docker-compose.yml beside this script), waits for
# /ready and checks that /model reports, for each channel in EXPECTED_VERSIONS, that channel's expected
# model version, within READY_TIMEOUT seconds. On success the tag is recorded in .deployed-tag (and the
# one it replaced in .previous-tag). On failure the tag that was running is brought back and the script
# exits 1; a tag that cannot be pulled changes nothing. Idempotent: rerunning with the deployed tag
# redeploys nothing (compose keeps the running container) and succeeds again.
# Needs docker (with compose), curl and python3 (reads /model's JSON) on the host.
#
# Optional: DEPLOY_DIR (default: this script's directory), COMPOSE_FILE, API_URL (default
# http://127.0.0.1:${API_PORT:-8000}), READY_TIMEOUT (120), POLL_INTERVAL (2), DOCKER (docker).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
"$here/require-env.sh" DEPLOY_IMAGE DEPLOY_TAG EXPECTED_VERSIONS >/dev/null
for pair in $EXPECTED_VERSIONS; do
  if [[ ! "$pair" =~ ^[a-z]+=[0-9]+$ ]]; then
    echo "deploy: error: EXPECTED_VERSIONS: '$pair' is not channel=version (e.g. \"sms=3 email=2\")" >&2
    exit 2
  fi
done

deploy_dir="${DEPLOY_DIR:-$here}"
compose_file="${COMPOSE_FILE:-$deploy_dir/docker-compose.yml}"
api_url="${API_URL:-http://127.0.0.1:${API_PORT:-8000}}"
ready_timeout="${READY_TIMEOUT:-120}"
poll_interval="${POLL_INTERVAL:-2}"
docker_cmd="${DOCKER:-docker}"
state_file="$deploy_dir/.deployed-tag"
previous_file="$deploy_dir/.previous-tag"

log() { echo "deploy: $*"; }
fail() { echo "deploy: error: $*" >&2; }

compose() {
  "$docker_cmd" compose --project-name spamfilter-api --file "$compose_file" "$@"
}

# Bring up DEPLOY_IMAGE:<tag> (compose recreates the container only if the image changed).
up() {
  SPAMFILTER_IMAGE="$DEPLOY_IMAGE:$1" compose up --detach --remove-orphans api
}

# The model version of each channel in a /model body, as "channel=version" words in the body's order:
# {"channels": {"sms": {"version": "3", …}, "email": {…}}}; an image from before the e-mail channel
# answers {"version": "3", …} for its one channel, SMS.
served_versions() {
  python3 -c '
import json, sys
try:
    body = json.loads(sys.stdin.read())
except ValueError:
    body = None
served = {}
if isinstance(body, dict) and isinstance(body.get("channels"), dict):
    served = {name: info.get("version") for name, info in body["channels"].items() if isinstance(info, dict)}
elif isinstance(body, dict):
    served = {"sms": body.get("version")}
print(" ".join(f"{name}={version}" for name, version in served.items() if version not in (None, "")))
'
}

# Whether every "channel=version" of $1 is among the served ones in $2 (with $1 empty: any model served).
serves() {
  local pair
  [ -n "$2" ] || return 1
  for pair in $1; do
    case " $2 " in *" $pair "*) ;; *) return 1 ;; esac
  done
}

# Wait until /ready answers 200 and /model reports the versions wanted (any model if empty).
verify() {
  local want="$1" deadline=$((SECONDS + ready_timeout)) seen="no answer" body served
  while :; do
    if curl --fail --silent --show-error --max-time 5 "$api_url/ready" >/dev/null 2>&1; then
      body="$(curl --fail --silent --max-time 5 "$api_url/model" 2>/dev/null || true)"
      served="$(printf '%s' "$body" | served_versions)"
      if serves "$want" "$served"; then
        log "$api_url is ready and serves ${served// /, }"
        return 0
      fi
      seen="ready, but /model reports '${served:-no model version}'"
    else
      seen="/ready not answering 200"
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      fail "$api_url: after ${ready_timeout}s: $seen (expected ${want:-any model})"
      return 1
    fi
    sleep "$poll_interval"
  done
}

current="$(cat "$state_file" 2>/dev/null || true)"
log "deploying $DEPLOY_IMAGE:$DEPLOY_TAG (models $EXPECTED_VERSIONS); running now: ${current:-nothing}"

if ! "$docker_cmd" pull "$DEPLOY_IMAGE:$DEPLOY_TAG"; then
  fail "cannot pull $DEPLOY_IMAGE:$DEPLOY_TAG; nothing changed (running: ${current:-nothing})"
  exit 1
fi

if up "$DEPLOY_TAG" && verify "$EXPECTED_VERSIONS"; then
  if [ "$current" != "$DEPLOY_TAG" ]; then
    printf '%s\n' "$current" >"$previous_file"
    printf '%s\n' "$DEPLOY_TAG" >"$state_file"
  fi
  log "deployed $DEPLOY_IMAGE:$DEPLOY_TAG (models $EXPECTED_VERSIONS)"
  exit 0
fi

fail "$DEPLOY_IMAGE:$DEPLOY_TAG failed its health check; recent logs:"
compose logs --tail 50 api >&2 || true

# Roll back to what ran before: the recorded tag, or the one before it if the failing tag was it.
target="$current"
if [ "$target" = "$DEPLOY_TAG" ]; then
  target="$(cat "$previous_file" 2>/dev/null || true)"
fi
if [ -z "$target" ]; then
  fail "no previous tag to roll back to; stopping the failed container"
  compose down || true
  exit 1
fi
log "rolling back to $DEPLOY_IMAGE:$target"
if up "$target" && verify ""; then
  printf '%s\n' "$target" >"$state_file"
  fail "rolled back to $DEPLOY_IMAGE:$target; $DEPLOY_TAG is not deployed"
else
  fail "rollback to $DEPLOY_IMAGE:$target failed too; the API is down"
fi
exit 1
