#!/usr/bin/env bash
# CI's deploy step: copy deploy.sh and the host's compose file to the EC2 instance over SSH and run
# deploy.sh there; its exit status (non-zero after a rollback) is this script's.
#
#   EC2_HOST=… EC2_USER=… EC2_SSH_KEY="$(cat key.pem)" DEPLOY_IMAGE=user/spamfilter-api \
#   DEPLOY_TAG=<git sha> EXPECTED_VERSIONS="sms=3 email=2" deploy/remote-deploy.sh
#
# Optional: EC2_KNOWN_HOSTS (the host's key line; without it the first key seen is trusted),
# EC2_PORT (22), EC2_DEPLOY_DIR (spamfilter, under the user's home), READY_TIMEOUT.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
"$here/require-env.sh" EC2_HOST EC2_USER EC2_SSH_KEY DEPLOY_IMAGE DEPLOY_TAG EXPECTED_VERSIONS

workdir="$(mktemp -d)"
trap 'rm -rf "$workdir"' EXIT
umask 077
printf '%s\n' "$EC2_SSH_KEY" >"$workdir/key"
ssh_opts=(-i "$workdir/key" -o BatchMode=yes -o ConnectTimeout=20 -o "Port=${EC2_PORT:-22}")
if [ -n "${EC2_KNOWN_HOSTS:-}" ]; then
  printf '%s\n' "$EC2_KNOWN_HOSTS" >"$workdir/known_hosts"
  ssh_opts+=(-o StrictHostKeyChecking=yes -o "UserKnownHostsFile=$workdir/known_hosts")
else
  ssh_opts+=(-o StrictHostKeyChecking=accept-new -o "UserKnownHostsFile=$workdir/known_hosts")
fi
target="$EC2_USER@$EC2_HOST"
remote_dir="${EC2_DEPLOY_DIR:-spamfilter}"

# The remote commands are built here on purpose (values quoted with %q): SC2029 is intended.
# shellcheck disable=SC2029
ssh "${ssh_opts[@]}" "$target" "mkdir -p $(printf '%q' "$remote_dir")"
scp "${ssh_opts[@]}" "$here/deploy.sh" "$here/require-env.sh" "$here/docker-compose.yml" "$target:$remote_dir/"
remote_command="cd $(printf '%q' "$remote_dir") && chmod +x deploy.sh require-env.sh && \
DEPLOY_IMAGE=$(printf '%q' "$DEPLOY_IMAGE") DEPLOY_TAG=$(printf '%q' "$DEPLOY_TAG") \
EXPECTED_VERSIONS=$(printf '%q' "$EXPECTED_VERSIONS") READY_TIMEOUT=$(printf '%q' "${READY_TIMEOUT:-120}") ./deploy.sh"
# shellcheck disable=SC2029
ssh "${ssh_opts[@]}" "$target" "$remote_command"
