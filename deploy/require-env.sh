#!/usr/bin/env bash
# Fail fast when a required variable (a CI secret, a deploy setting) is unset or empty, naming each one.
#   deploy/require-env.sh DOCKERHUB_USERNAME DOCKERHUB_TOKEN
# The first step of every workflow job, so a missing secret stops the job before anything runs.
set -euo pipefail

if [ "$#" -eq 0 ]; then
  echo "usage: $0 NAME [NAME ...]" >&2
  exit 2
fi

missing=()
for name in "$@"; do
  if [[ ! "$name" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]]; then
    echo "error: '$name' is not a variable name" >&2
    exit 2
  fi
  if [ -z "${!name:-}" ]; then
    missing+=("$name")
  fi
done

if [ "${#missing[@]}" -gt 0 ]; then
  for name in "${missing[@]}"; do
    # GitHub Actions shows ::error:: lines as annotations on the run.
    if [ -n "${GITHUB_ACTIONS:-}" ]; then echo "::error::missing required secret or variable: $name"; fi
  done
  echo "error: missing required secret(s) or variable(s): ${missing[*]} (set them in the repository's Settings → Secrets and variables → Actions, or in the environment)" >&2
  exit 1
fi
echo "ok: $* set"
