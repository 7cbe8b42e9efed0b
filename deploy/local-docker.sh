#!/usr/bin/env bash
# A stand-in for `docker` on a machine without a Docker engine, for `make ci-local`: deploy.sh runs
# against it unchanged. An "image" DEPLOY_IMAGE:<tag> is the directory $LOCAL_DOCKER_DIR/images/<tag>/
# holding bundle/<channel>/ serving bundles (ci-local "pushes" there), and "running" it starts the API
# with the image's command and settings (python -m api, MODEL_URI=bundle/sms; the e-mail channel serves
# bundle/email when the image has it) in that directory on 127.0.0.1:$API_PORT.
#   pull IMAGE:TAG            fails unless the image directory exists
#   compose … up …            (re)starts the API on $SPAMFILTER_IMAGE unless it already runs it
#   compose … down | logs     stops it | shows its log
# LOCAL_DOCKER_FAIL_HEALTH=1 starts it on a missing bundle, so /ready never turns 200 (a failed deploy).
set -euo pipefail

: "${LOCAL_DOCKER_DIR:?set LOCAL_DOCKER_DIR}"
: "${API_PORT:?set API_PORT}"
python_cmd="${PYTHON:-python}"
pid_file="$LOCAL_DOCKER_DIR/api.pid"
running_file="$LOCAL_DOCKER_DIR/running"
log_file="$LOCAL_DOCKER_DIR/api.log"
mkdir -p "$LOCAL_DOCKER_DIR/images"
printf '%s\n' "$*" >>"$LOCAL_DOCKER_DIR/calls.log"

image_dir() { printf '%s/images/%s' "$LOCAL_DOCKER_DIR" "${1##*:}"; }

alive() { [ -f "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null; }

stop() {
  if alive; then
    local pid
    pid="$(cat "$pid_file")"
    kill "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$pid_file" "$running_file"
}

start() {
  local image="$1" dir
  local models=(MODEL_URI=bundle/sms)
  dir="$(image_dir "$image")"
  if [ "${LOCAL_DOCKER_FAIL_HEALTH:-}" = 1 ]; then models=(MODEL_URI=no-such-bundle EMAIL_MODEL_URI=no-such-bundle); fi
  (
    cd "$dir"
    env "${models[@]}" HOST=127.0.0.1 PORT="$API_PORT" WORKERS=1 \
      PREDICTION_LOG_URL="sqlite:///$LOCAL_DOCKER_DIR/predictions.db" \
      nohup "$python_cmd" -m api </dev/null >>"$log_file" 2>&1 &
    echo "$!" >"$pid_file"
  )
  printf '%s\n' "$image" >"$running_file"
}

case "${1:-}" in
  pull)
    if [ ! -d "$(image_dir "$2")/bundle" ]; then
      echo "Error response from daemon: manifest for $2 not found" >&2
      exit 1
    fi
    echo "pulled $2"
    ;;
  compose)
    shift
    action=""
    for arg in "$@"; do
      case "$arg" in up | down | logs) action="$arg" ;; esac
    done
    case "$action" in
      up)
        : "${SPAMFILTER_IMAGE:?set SPAMFILTER_IMAGE}"
        if alive && [ "$(cat "$running_file" 2>/dev/null)" = "$SPAMFILTER_IMAGE" ]; then
          echo "api: $SPAMFILTER_IMAGE is up to date"
        else
          stop
          start "$SPAMFILTER_IMAGE"
          echo "api: started $SPAMFILTER_IMAGE"
        fi
        ;;
      down) stop ;;
      logs) tail -n 50 "$log_file" 2>/dev/null || true ;;
      *) echo "local-docker: unsupported compose command: $*" >&2; exit 2 ;;
    esac
    ;;
  *)
    echo "local-docker: unsupported command: $*" >&2
    exit 2
    ;;
esac
