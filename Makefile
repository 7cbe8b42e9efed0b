# Spam-filter MLOps pipeline. `make` lists the targets; `make run` and `make test` are all a newcomer needs.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON_SYSTEM ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
PY := $(BIN)/python
export PATH := $(BIN):$(PATH)
export DVC_NO_ANALYTICS := 1
export PYTHONDONTWRITEBYTECODE := 1

# Raw data: a file you name, else the shared copy beside the checkout (if any), else DVC remote / download.
SPAM_DATA ?= $(wildcard $(CURDIR)/../shared/data/sms_spam_collection.tsv)
ifneq ($(strip $(SPAM_DATA)),)
export SPAM_DATA
endif

# The channels params.yaml configures (sms, email); CHANNEL=… picks one for the per-channel targets.
CHANNELS = $(shell $(BIN)/spamfilter channels 2>/dev/null || echo sms)
CHANNEL ?=
channel_arg = $(if $(CHANNEL),--channel $(CHANNEL))

MLFLOW_TRACKING_URI ?= sqlite:///mlflow.db
export MLFLOW_TRACKING_URI
MLFLOW_PORT ?= 5000

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "; printf "Usage: make <target>\n\n"} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(VENV)/.runtime: requirements.txt requirements-serve.txt requirements-train.txt pyproject.toml
	test -x $(PY) || $(PYTHON_SYSTEM) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

.PHONY: setup
setup: $(VENV)/.runtime ## Create .venv and install the runtime dependencies and the package

.PHONY: setup-dev
setup-dev: $(VENV)/.dev ## setup + test and lint tools

.PHONY: data
data: setup ## Obtain every channel's raw corpus into data/raw/<channel> (SPAM_DATA / SPAM_EMAIL_DATA, shared copy, dvc pull, verified download)
	@for channel in $(CHANNELS); do $(BIN)/spamfilter data --channel $$channel || exit 1; done

REPRO_ARGS ?=

.PHONY: repro
repro: setup ## Run the DVC pipeline (only what changed; REPRO_ARGS=--pull fetches unchanged outputs from the remote)
	$(BIN)/dvc repro $(REPRO_ARGS)

.PHONY: run
run: data repro ## Set up, run the pipeline, then per channel: gate the new model, promote it if it wins, export the champion's bundle
	@for channel in $(CHANNELS); do \
	  $(BIN)/spamfilter gate --channel $$channel && \
	  $(BIN)/spamfilter promote --channel $$channel --if-passed && \
	  $(BIN)/spamfilter export --channel $$channel --out $(BUNDLE)/$$channel || exit 1; \
	done
	@echo
	@for channel in $(CHANNELS); do $(BIN)/spamfilter summary --channel $$channel --bundle $(BUNDLE)/$$channel; done
	@echo "MLflow runs: $(MLFLOW_TRACKING_URI) (make mlflow-ui); champion history: make history CHANNEL=<channel>"

# Registry (README "Registry, gate and promotion"): gate → promote → export; rollback; history. CHANNEL=sms|email.
BUNDLE ?= bundle
GATE_ARGS ?=
REASON ?=
TO ?=
VERSION ?=
ALIAS ?=

.PHONY: gate
gate: setup ## Score challenger and champion on the held-out split; verdict in reports/<channel>/gate.json (CHANNEL= GATE_ARGS=)
	$(BIN)/spamfilter gate $(channel_arg) $(GATE_ARGS)

.PHONY: promote
promote: setup ## Move `champion` to the challenger the last gate passed (REASON="why")
	$(BIN)/spamfilter promote $(channel_arg) $(if $(REASON),--reason "$(REASON)")

.PHONY: rollback
rollback: setup ## Move `champion` back to the previous champion (TO=<version> REASON="why")
	$(BIN)/spamfilter rollback $(channel_arg) $(if $(TO),--to $(TO)) $(if $(REASON),--reason "$(REASON)")

.PHONY: history
history: setup ## List the promotions and rollbacks of `champion` (who, when, why)
	$(BIN)/spamfilter history $(channel_arg)

.PHONY: export
export: setup ## Write the champion (or VERSION=<n> / ALIAS=<alias>) of CHANNEL as a serving bundle in $(BUNDLE)/<channel>/
	$(BIN)/spamfilter export $(channel_arg) $(if $(CHANNEL),--out $(BUNDLE)/$(CHANNEL)) $(if $(VERSION),--version $(VERSION),$(if $(ALIAS),--alias $(ALIAS)))

# Debian packages the tests and benchmarks use: the page test drives chromium through chromedriver, the
# spamd tests talk to the listener with SpamAssassin's spamc, bench-serve loads the API with wrk. Installed
# when any is missing and we may (root with apt-get).
APT_TEST_PACKAGES := chromium chromium-driver spamc postgresql
APT_BENCH_PACKAGES := wrk

.PHONY: test-tools
test-tools: ## Install the Debian packages the tests need (chromium, chromium-driver, spamc, postgresql) if missing
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null && command -v spamc >/dev/null \
	  && ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_TEST_PACKAGES); \
	  else echo "note: install $(APT_TEST_PACKAGES) to run the page, spamc and PostgreSQL tests (outside CI they skip without them)"; fi; }

.PHONY: test
test: setup-dev test-tools ## Set up and run the whole test suite (two pytest-xdist workers, a test file each at a time)
	$(BIN)/pytest -n 2 --dist loadfile

.PHONY: test-unit
test-unit: setup-dev ## Fast offline tests: unit tests and the API's in-process route tests
	$(BIN)/pytest tests/unit tests/api/routes

.PHONY: lint
lint: setup-dev ## ruff check, ruff format check and the strict type check (mypy on spamfilter, api, stages)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

.PHONY: format
format: setup-dev ## Apply ruff fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

.PHONY: bench
bench: setup-dev data ## Run the benchmarks under bench/ and print their figures
	$(PY) bench/quality.py
	$(PY) bench/pipeline.py
	$(PY) bench/monitor.py

.PHONY: serve
serve: setup ## Run the API on the exported bundles (bundle/sms, bundle/email); SPAMD_PORT=7830 adds spamd (README "Serving API")
	$(PY) -m api

.PHONY: bench-serve
bench-serve: setup-dev ## Benchmark the API against `mlflow models serve` (needs wrk: installed if missing)
	@command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_BENCH_PACKAGES); }
	$(PY) bench/serve.py

.PHONY: bench-serve-email
bench-serve-email: setup-dev ## Benchmark e-mail serving (HTTP and spamd protocol) against SpamAssassin's spamd, and a 5-minute soak (needs wrk, spamassassin, spamc)
	@command -v wrk >/dev/null && command -v spamd >/dev/null && command -v spamc >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk spamassassin spamc; }
	$(PY) bench/serve_email.py

# Monitoring drills: `make feed FEED_DRIFT=new_campaign`, then `make monitor MONITOR_ARGS="--batch data/new/sms"`.
FEED_N ?= 100
FEED_DRIFT ?= none
FEED_STRENGTH ?=
MONITOR_ARGS ?=
EVIDENTLY_VENV ?=

.PHONY: feed
feed: setup ## Sample a labelled SMS batch into data/new/sms/ (FEED_N=100 FEED_DRIFT=none|spam_surge|new_campaign|length_shift|vocab_shift FEED_STRENGTH=)
	$(BIN)/spamfilter feed $(channel_arg) --n $(FEED_N) --drift $(FEED_DRIFT) $(if $(FEED_STRENGTH),--strength $(FEED_STRENGTH))

.PHONY: monitor
monitor: setup ## Check CHANNEL's prediction log (or MONITOR_ARGS="--batch data/new/<channel>") for drift; print retrain_needed
	$(BIN)/spamfilter monitor $(channel_arg) $(MONITOR_ARGS)

.PHONY: bench-monitor
bench-monitor: setup-dev ## Monitor benchmarks: SMS false alarms, detection, speed (EVIDENTLY_VENV=<venv> adds Evidently); e-mail on the SpamAssassin time split
	$(PY) bench/monitor.py $(if $(EVIDENTLY_VENV),--evidently $(EVIDENTLY_VENV))
	$(PY) bench/monitor_email.py

.PHONY: drill-email
drill-email: setup ## E-mail drill: train on the SpamAssassin corpus's first generation, monitor the later one as traffic, retrain, gate, promote (throw-away MLflow store; DRILL_ARGS="--workspace DIR ...")
	$(PY) -m spamfilter.monitoring.drill $(DRILL_ARGS)

# Storage (README "Storage and deployment"): DVC remotes `local` (default, .dvc-storage/) and `s3`.
DVC_REMOTE ?=
MLFLOW_BACKEND_STORE_URI ?= sqlite:///mlflow.db
MLFLOW_ARTIFACTS_DESTINATION ?= ./mlartifacts
MLFLOW_HOST ?= 127.0.0.1

.PHONY: push
push: setup ## Upload data, models and evaluation outputs to the DVC remote (DVC_REMOTE=s3; default: local)
	$(BIN)/spamfilter push $(if $(DVC_REMOTE),--remote $(DVC_REMOTE))

.PHONY: pull
pull: setup ## Download them from the DVC remote (DVC_REMOTE=s3; default: local)
	$(BIN)/spamfilter pull $(if $(DVC_REMOTE),--remote $(DVC_REMOTE))

.PHONY: mlflow-server
mlflow-server: setup ## Team tracking server: SQL backend (MLFLOW_BACKEND_STORE_URI) + proxied artifacts (MLFLOW_ARTIFACTS_DESTINATION=s3://…)
	$(BIN)/mlflow server --backend-store-uri $(MLFLOW_BACKEND_STORE_URI) \
	  --artifacts-destination $(MLFLOW_ARTIFACTS_DESTINATION) --host $(MLFLOW_HOST) --port $(MLFLOW_PORT)

.PHONY: mlflow-ui
mlflow-ui: setup ## Open the MLflow UI on the local tracking store (http://127.0.0.1:$(MLFLOW_PORT))
	$(BIN)/mlflow ui --backend-store-uri $(MLFLOW_TRACKING_URI) --host 127.0.0.1 --port $(MLFLOW_PORT)

.PHONY: clean
clean: ## Remove pipeline outputs, the bundle, caches and the local MLflow store (keeps data/raw, the DVC cache, .venv)
	find data/processed data/features models -type f ! -name .gitignore -delete 2>/dev/null || true
	rm -f reports/*/plots/*.png reports/*/behavioural.json reports/*/bad_rows.tsv reports/*/gate.json reports/*/monitor.*
	rm -rf $(BUNDLE) mlflow.db mlartifacts predictions.db .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -not -path './.venv/*' -exec rm -rf {} +

# Automation (README "Automation"): the steps of .github/workflows/*.yml, each runnable here.
REPORT_BASE ?= origin/main
CHAMPION_BUNDLES ?=
REPORT_ARGS ?=
NAMES ?=

.PHONY: require-env
require-env: ## Fail fast naming every unset variable among NAMES="A B …" (the first step of each CI job)
	deploy/require-env.sh $(NAMES)

.PHONY: remote-default
remote-default: setup ## Make DVC_REMOTE (e.g. s3) the default DVC remote, in .dvc/config.local (CI)
	$(BIN)/dvc remote default --local $(DVC_REMOTE)

# The channels a retrain builds (CHANNEL=…, default every one) and the DVC targets it pushes for each.
retrain_channels = $(or $(CHANNEL),$(CHANNELS))
channel_targets = data/raw/$(1).dvc ingest@$(1) featurize@$(1) train@$(1) evaluate@$(1)

.PHONY: retrain
retrain: setup ## Retrain CHANNEL (default: every channel): its raw data, dvc repro of its stages (pulling unchanged outputs), dvc push of them
	@for channel in $(retrain_channels); do $(BIN)/spamfilter data --channel $$channel || exit 1; done
	$(BIN)/dvc repro --pull $(foreach channel,$(retrain_channels),evaluate@$(channel))
	$(BIN)/spamfilter push $(if $(DVC_REMOTE),--remote $(DVC_REMOTE)) $(foreach channel,$(retrain_channels),$(call channel_targets,$(channel)))

.PHONY: export-all
export-all: setup ## Write every channel's champion (or ALIAS=<alias>) as a bundle in $(BUNDLE)/<channel>/; a channel that has none is named and skipped
	@for channel in $(CHANNELS); do \
	  $(BIN)/spamfilter export --channel $$channel --out $(BUNDLE)/$$channel $(if $(ALIAS),--alias $(ALIAS)) \
	    || echo "export-all: no bundle for $$channel (the error above); the report shows it as not judged"; \
	done

.PHONY: report
report: setup ## Write report.md: metrics and params diff against REPORT_BASE, plots, gate vs the champions in CHAMPION_BUNDLES/<channel>
	$(BIN)/spamfilter report --base $(REPORT_BASE) $(if $(CHAMPION_BUNDLES),--champion-dir $(CHAMPION_BUNDLES)) $(REPORT_ARGS)

.PHONY: deploy
deploy: ## Run deploy/deploy.sh on this host (DEPLOY_IMAGE, DEPLOY_TAG, EXPECTED_VERSIONS="sms=3 email=2"; rolls back on failure)
	deploy/deploy.sh

.PHONY: deploy-ec2
deploy-ec2: ## Copy deploy/ to the EC2 host and run deploy.sh there over SSH (EC2_HOST, EC2_USER, EC2_SSH_KEY, DEPLOY_*)
	deploy/remote-deploy.sh

.PHONY: ci-local
ci-local: setup ## Rehearse the pipeline workflow here, every channel: monitor → retrain → gate → record → export → deploy (local) → promote
	deploy/ci-local.sh

# Batch scoring: `make score INPUT=corpus.tsv OUT=scored.parquet` (README "Batch scoring"). ENGINE=spark scores
# with Spark (MASTER=, default local[*]); it needs pyspark (the `spark` extra) and Java 17+, both installed here
# when missing and we may (Java: root with apt-get).
INPUT ?=
OUT ?= scored.parquet
ENGINE ?= local
MASTER ?=
SCORE_ARGS ?=
APT_SPARK_PACKAGES := openjdk-17-jre-headless
java_17 = $${JAVA_HOME:+$$JAVA_HOME/bin/}java -version 2>&1 | grep -Eq 'version "(1[7-9]|[2-9][0-9])'

.PHONY: score
score: setup ## Batch-score INPUT (file or folder, any input format) with CHANNEL's champion (VERSION=/ALIAS=) into OUT (Parquet); ENGINE=spark [MASTER=]
	@test -n "$(INPUT)" || { echo "make score: name the corpus to score: INPUT=<file or folder> [OUT=scored.parquet]"; exit 2; }
ifeq ($(ENGINE),spark)
	@$(PY) -c "import pyspark" 2>/dev/null || $(PY) -m pip install --quiet -r requirements-spark.txt
	@$(java_17) || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_SPARK_PACKAGES); \
	  else echo "make score: ENGINE=spark needs Java 17 or newer: install $(APT_SPARK_PACKAGES) (or set JAVA_HOME)"; exit 1; fi; }
endif
	$(BIN)/spamfilter score $(channel_arg) --input "$(INPUT)" --out "$(OUT)" --engine $(ENGINE) $(if $(MASTER),--master "$(MASTER)") $(if $(VERSION),--version $(VERSION),$(if $(ALIAS),--alias $(ALIAS))) $(SCORE_ARGS)
