#!/usr/bin/env bash
# The per-channel steps of .github/workflows/pipeline.yml, run by its jobs and by `make ci-local` alike:
#
#   deploy/pipeline.sh monitor   every channel: pull its reference profile and model (MONITOR_PULL=true),
#                                `make monitor` (no profile yet ⇒ retrain); FORCE_RETRAIN=true skips it
#   deploy/pipeline.sh retrain   every channel in RETRAIN_CHANNELS: `make retrain` (data, dvc repro of its
#                                stages, dvc push), then `make gate`
#   deploy/pipeline.sh record    commit what was trained (dvc.lock, the channels' metrics and plots, the
#                                merged batches): `cml pr create` (RECORD_WITH=cml) or a local branch
#   deploy/pipeline.sh export    every channel: bundle/<channel> = the challenger its gate passed
#                                (CHALLENGER_VERSIONS), else its current champion (none yet: not served)
#   deploy/pipeline.sh promote   every channel in PROMOTE_CHANNELS: `make promote` (after a passed deploy)
#
# Inputs are environment variables (the outputs of the job before, as Actions passes them); outputs are
# key=value lines appended to $GITHUB_OUTPUT. Channel lists are space-separated names ("sms email"),
# versions "channel=version" words ("sms=3 email=2"). A channel whose step fails is reported and left
# out of the steps after it, so it keeps its champion; the other channels go on. The step then exits 1,
# after writing its outputs, so the job shows red while the next jobs still run for the healthy channels.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
spamfilter="${SPAMFILTER:-$repo/.venv/bin/spamfilter}"
python="${PYTHON:-$repo/.venv/bin/python}"
bundle="${BUNDLE:-bundle}"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

log() { echo "pipeline: $*"; }
warn() { echo "pipeline: $*" >&2; }
# Append KEY=VALUE to the step's outputs (a file Actions reads after the step; ci-local reads it too).
emit() { if [ -n "${GITHUB_OUTPUT:-}" ]; then printf '%s=%s\n' "$1" "$2" >>"$GITHUB_OUTPUT"; fi; }
# The value of KEY in an outputs file (the last one wins, as in Actions).
value_of() { sed -n "s/^$2=//p" "$1" | tail -n 1; }
# The version of CHANNEL in a "channel=version …" list.
version_in() { local pair; for pair in $2; do if [ "${pair%%=*}" = "$1" ]; then echo "${pair#*=}"; fi; done; }
contains() { case " $2 " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
joined() { local IFS=' '; echo "$*"; }
mk() { make --no-print-directory "$@"; }
bool() { if [ "$1" -gt 0 ]; then echo true; else echo false; fi; }
# The channels params.yaml configures; an unreadable params.yaml stops the step here (set -e).
configured_channels() { "$spamfilter" channels; }

# Whether monitor arguments are `--batch DIR` for a folder that holds no batch yet (data/new/<channel>
# between batches): then there is nothing new to judge, and no retrain.
no_batch_yet() {
  local flag dir rest
  read -r flag dir rest <<<"$1"
  [ "$flag" = --batch ] && [ -z "$rest" ] && [ -d "$dir" ] && [ -z "$(find "$dir" -type f ! -name '.*' -print -quit)" ]
}

# Each channel's monitor decides alone: its own reference profile, its own batches or log slice.
step_monitor() {
  local channel channels args out retrain=() failed=() placeholder='{channel}' default_monitor_args='--batch data/new/{channel}'
  channels="$(configured_channels)"
  for channel in $channels; do
    if [ "${FORCE_RETRAIN:-false}" = true ]; then
      log "$channel: force_retrain: skipping the monitor"
      retrain+=("$channel")
      emit "monitor_$channel" forced
      continue
    fi
    if [ "${MONITOR_PULL:-false}" = true ]; then
      # Nothing to pull on a first run (an empty remote, or a dvc.lock that names no profile yet): the
      # monitor then finds no profile and decides to train.
      "$spamfilter" pull ${DVC_REMOTE:+--remote "$DVC_REMOTE"} \
        "models/$channel/reference_profile.json" "models/$channel/model.joblib" ||
        warn "$channel: could not pull its reference profile and model (a first run?); the monitor decides"
    fi
    args="${MONITOR_ARGS:-$default_monitor_args}"
    args="${args//"$placeholder"/$channel}"
    if [ -f "models/$channel/reference_profile.json" ] && no_batch_yet "$args"; then
      log "$channel: no labelled batch in ${args#--batch } yet: nothing new to monitor, no retrain"
      emit "monitor_$channel" no_batch
      continue
    fi
    out="$scratch/monitor-$channel.out"
    : >"$out"
    if GITHUB_OUTPUT="$out" mk monitor CHANNEL="$channel" MONITOR_ARGS="$args --retrain-if-no-profile"; then
      emit "monitor_$channel" "$(value_of "$out" monitor_status)"
      if [ "$(value_of "$out" retrain_needed)" = true ]; then retrain+=("$channel"); fi
    else
      warn "$channel: the monitor failed; this channel stops here (its champion stays)"
      failed+=("$channel")
    fi
  done
  emit retrain_channels "$(joined "${retrain[@]}")"
  emit retrain_needed "$(bool "${#retrain[@]}")"
  emit failed_channels "$(joined "${failed[@]}")"
  log "retrain_channels=$(joined "${retrain[@]}") failed_channels=$(joined "${failed[@]}")"
  [ "${#failed[@]}" -eq 0 ]
}

# One channel after the other: a channel whose dvc repro fails gets its dvc.lock entries back, so what
# is recorded and pushed is only what trained to the end.
step_retrain() {
  local channel out lock_before="$scratch/dvc.lock.before" verdict version
  local trained=() passed=() rejected=() failed=() versions=() summary=()
  for channel in ${RETRAIN_CHANNELS:-}; do
    if [ -f dvc.lock ]; then cp dvc.lock "$lock_before"; else rm -f "$lock_before"; fi
    if ! mk retrain CHANNEL="$channel"; then
      warn "$channel: retraining failed; this channel stops here (its champion stays)"
      if [ -f "$lock_before" ]; then cp "$lock_before" dvc.lock; fi
      failed+=("$channel")
      summary+=("$channel: retraining failed")
      continue
    fi
    trained+=("$channel")
    out="$scratch/gate-$channel.out"
    : >"$out"
    if ! GITHUB_OUTPUT="$out" mk gate CHANNEL="$channel"; then
      warn "$channel: the gate failed; this channel stops here (its champion stays)"
      failed+=("$channel")
      summary+=("$channel: trained, the gate failed")
      continue
    fi
    verdict="$(value_of "$out" deploy_needed)"
    version="$(value_of "$out" challenger_version)"
    log "$channel: deploy_needed=$verdict challenger_version=$version"
    if [ "$verdict" = true ]; then
      passed+=("$channel")
      versions+=("$channel=$version")
      summary+=("$channel: v$version trained, passed the gate")
    else
      rejected+=("$channel")
      summary+=("$channel: v$version trained, rejected by the gate (the champion stays)")
      log "$channel: the gate rejected v$version; it keeps its champion"
    fi
  done
  emit trained_channels "$(joined "${trained[@]}")"
  emit promote_channels "$(joined "${passed[@]}")"
  emit rejected_channels "$(joined "${rejected[@]}")"
  emit failed_channels "$(joined "${failed[@]}")"
  emit challenger_versions "$(joined "${versions[@]}")"
  emit deploy_needed "$(bool "${#passed[@]}")"
  (IFS=';' && emit summary "${summary[*]}")
  [ "${#failed[@]}" -eq 0 ]
}

# What a retrain records in git, for the channels that trained: the lock, their git-tracked metrics,
# stats and plot data, the raw data's .dvc file and the labelled batches the ingest merged.
trained_paths() {
  local channel path
  if [ -e dvc.lock ]; then echo dvc.lock; fi
  for channel in "$@"; do
    for path in "data/raw/$channel.dvc" "data/new/$channel" "reports/$channel/metrics.json" \
      "reports/$channel/data_stats.json" "reports/$channel/plots"/*.json; do
      if [ -e "$path" ]; then echo "$path"; fi
    done
  done
}

step_record() {
  local channels=() paths=() title body
  read -r -a channels <<<"${RECORD_CHANNELS:-}"
  if [ "${#channels[@]}" -eq 0 ]; then
    log "nothing was trained; nothing to record"
    return 0
  fi
  mapfile -t paths < <(trained_paths "${channels[@]}")
  title="Retrained $(joined "${channels[@]}") (pipeline run ${GITHUB_RUN_ID:-local})"
  body="What the pipeline trained, recorded in git: dvc.lock (its outputs are in the DVC remote), the metrics and plots, the merged batches. ${RECORD_SUMMARY:-}"
  if [ "${RECORD_WITH:-branch}" = cml ]; then
    # A new branch with these files and a pull request to the branch this run is on; nothing changed:
    # cml says so and opens none.
    cml pr create --title "$title" --body "$body" --message "$title" "${paths[@]}"
    return 0
  fi
  # Locally: the same commit on a branch of its own, leaving the checkout and its branch as they were.
  local index="$scratch/index" tree commit branch
  branch="${RECORD_BRANCH:-ci-local/retrain-$(date -u +%Y%m%dT%H%M%SZ)}"
  GIT_INDEX_FILE="$index" git read-tree HEAD
  GIT_INDEX_FILE="$index" git add -A -- "${paths[@]}"
  tree="$(GIT_INDEX_FILE="$index" git write-tree)"
  if [ "$tree" = "$(git rev-parse 'HEAD^{tree}')" ]; then
    log "what was trained is already in git; no branch"
    return 0
  fi
  commit="$(git commit-tree "$tree" -p HEAD -m "$title" -m "$body")"
  git update-ref "refs/heads/$branch" "$commit"
  emit record_branch "$branch"
  log "recorded what was trained on branch $branch (as the pull request would): ${paths[*]}"
}

# The image serves every channel: a channel whose gate passed ships its challenger, the others their
# current champion, exported by alias. A channel with no champion yet is left out of the image.
step_export() {
  local channel channels version expected=() tag_parts=() served=()
  channels="$(configured_channels)"
  rm -rf "${bundle:?}"
  for channel in $channels; do
    version="$(version_in "$channel" "${CHALLENGER_VERSIONS:-}")"
    if [ -n "$version" ]; then
      mk export BUNDLE="$bundle" CHANNEL="$channel" VERSION="$version"
    elif ! mk export BUNDLE="$bundle" CHANNEL="$channel" ALIAS=champion; then
      if [ "$("$spamfilter" history --channel "$channel" --json | tr -d '[:space:]')" = "[]" ]; then
        log "$channel: no champion yet and no challenger passed; the image leaves this channel out"
        continue
      fi
      warn "$channel: cannot export its champion; no image"
      return 1
    fi
    version="$("$python" -c 'import json, sys; print(json.load(open(sys.argv[1]))["version"])' "$bundle/$channel/metadata.json")"
    expected+=("$channel=$version")
    tag_parts+=("$channel-v$version")
    served+=("$channel")
  done
  if [ "${#served[@]}" -eq 0 ]; then
    warn "no channel has a model to serve; no image"
    return 1
  fi
  emit expected_versions "$(joined "${expected[@]}")"
  emit served_channels "$(joined "${served[@]}")"
  emit models_tag "$(IFS=. && echo "${tag_parts[*]}")"
  log "image bundles: $(joined "${expected[@]}")"
}

# Only after the deploy's health check passed: move `champion` of each channel whose gate passed.
step_promote() {
  local channel failed=()
  for channel in ${PROMOTE_CHANNELS:-}; do
    if ! mk promote CHANNEL="$channel" REASON="${PROMOTE_REASON:-deployed after the gate passed}"; then
      warn "$channel: promotion failed; its champion stays"
      failed+=("$channel")
    fi
  done
  [ "${#failed[@]}" -eq 0 ]
}

case "${1:-}" in
  monitor) step_monitor ;;
  retrain) step_retrain ;;
  record) step_record ;;
  export) step_export ;;
  promote) step_promote ;;
  *)
    echo "usage: $0 monitor|retrain|record|export|promote" >&2
    exit 2
    ;;
esac
