# The two quick-start commands are `make demo` and `make test`; both set up what they need first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

export MLOPS_HOME ?= $(CURDIR)/data
export DAGSTER_HOME ?= $(MLOPS_HOME)/dagster_home
export GX_ANALYTICS_ENABLED ?= false
# No usage reporting from MLflow, Ray or anything else that honours DO_NOT_TRACK.
export MLFLOW_DISABLE_TELEMETRY ?= true
export RAY_USAGE_STATS_ENABLED ?= 0
export DO_NOT_TRACK ?= true
export PYTHONUNBUFFERED := 1

.PHONY: setup demo test ui year stop lint bench dbt-manifest clean screenshot metrics stream-consumer

# Reinstalls only when pyproject.toml changes, so a second call starts working at once.
# torch is named with its exact version so pip takes the local CPU wheel instead of a CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "torch==2.13.0" -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)
	@mkdir -p "$(DAGSTER_HOME)"
	@test -f "$(DAGSTER_HOME)/dagster.yaml" || cp deploy/local/dagster.yaml "$(DAGSTER_HOME)/dagster.yaml"

demo: setup
	$(BIN)/mlops demo $(ARGS)

test: setup
	$(BIN)/python -m pytest $(ARGS)

# Each background process the targets below start leaves its PID in $(RUN_DIR); `make stop` ends those
# and nothing else (no pattern matching over the machine's processes).
RUN_DIR := $(MLOPS_HOME)/run
LOGS := $(MLOPS_HOME)/logs
# `alive NAME`: the process of RUN_DIR/NAME.pid still runs.
alive = pid=$$(cat "$(RUN_DIR)/$(1).pid" 2>/dev/null) && [ -n "$$pid" ] && kill -0 "$$pid" 2>/dev/null

# Under `make ui` / `make year` the features step reaches a long-lived Spark Connect server (a Spark
# standalone cluster of this machine, `mlops cluster up --only spark`) instead of starting a JVM in every
# run: a landed day no longer pays ~11 s of JVM start. SPARK=embedded keeps the in-process session; an
# MLOPS_SPARK_REMOTE of your own (a real cluster) is used as it is. `make stop` stops the local cluster.
SPARK ?= connect
LOCAL_CONNECT := sc://127.0.0.1:15002
ifneq ($(MLOPS_SPARK_REMOTE),)
spark_up := true
spark_env :=
else ifeq ($(SPARK),connect)
spark_up := $(BIN)/mlops cluster up --only spark
spark_env := MLOPS_SPARK_REMOTE=$(LOCAL_CONNECT)
else
spark_up := true
spark_env :=
endif

# The platform's metrics exporter (`mlops metrics`, docs/operations.md#metrics) in the background, beside
# `dagster dev` for `make ui` and `make year`; Prometheus scrapes it (deploy/prometheus/prometheus.yml).
METRICS_PORT ?= 9400
metrics: setup
	@mkdir -p "$(LOGS)" "$(RUN_DIR)"
	@if $(call alive,metrics); then echo "mlops metrics already runs (pid $$pid)"; else \
		set -m; nohup $(BIN)/mlops metrics --port $(METRICS_PORT) > "$(LOGS)/metrics.log" 2>&1 & \
		echo $$! > "$(RUN_DIR)/metrics.pid"; \
		echo "mlops metrics: http://127.0.0.1:$(METRICS_PORT)/metrics, log $(LOGS)/metrics.log"; fi

# STREAM=1: the data comes through the broker instead (docs/streaming.md). `make ui STREAM=1` starts the
# lake consumer beside the UI (publish with `mlops stream`); `make year STREAM=1` also starts the live feed
# of April-December at SPEED (600: a day of 2013 every 2.4 minutes). The consumer lands each complete day
# in the landing zone, where the landing-zone sensor takes it exactly as a delivered file, and pushes each
# hour's weather and delay statistics to the online store (ONLINE= leaves the online store to the batch).
STREAM ?=
SPEED ?= 600
ONLINE ?= 1
stream-consumer: setup
	@mkdir -p "$(LOGS)" "$(RUN_DIR)"
	@if $(call alive,stream-consume); then echo "mlops stream consume already runs (pid $$pid)"; else \
		set -m; nohup $(BIN)/mlops stream consume $(if $(ONLINE),--online) > "$(LOGS)/stream-consume.log" 2>&1 & \
		echo $$! > "$(RUN_DIR)/stream-consume.pid"; \
		echo "mlops stream consume: log $(LOGS)/stream-consume.log"; fi

ui: setup metrics $(if $(STREAM),stream-consumer)
	@mkdir -p "$(RUN_DIR)"
	$(spark_up)
	echo $$$$ > "$(RUN_DIR)/dagster-dev.pid"; $(spark_env) exec $(BIN)/dagster dev -w workspace.yaml

# The rest of 2013 into the landing zone, with the UI and daemon running in the background: sensors,
# automation and retraining take it from there. By default thirty days at a time, each once the graph has
# finished the last step and stayed idle for 75 s (the retraining sensor looks every 60 s): the landing
# sensor ingests the month in one ranged run and automation carries it down as a backfill.
# PACE="--every 120" delivers one day every 120 s instead, as a live feed would (nine hours).
# `make stop` ends both. `set -m`: a background command of a shell without job control starts with SIGINT
# ignored, and Dagster maps SIGTERM to the SIGINT handler, so SIGTERM could not end it; with job control
# each process also leads its own process group, which `make stop` ends whole (webserver and daemon too).
PACE ?= --days-per-step 30 --when-idle 75
year: setup metrics $(if $(STREAM),stream-consumer)
	@mkdir -p "$(LOGS)" "$(RUN_DIR)"
	@$(spark_up)
	@if $(call alive,dagster-dev); then echo "dagster dev already runs (pid $$pid)"; else \
		set -m; $(spark_env) nohup $(BIN)/dagster dev -w workspace.yaml > "$(LOGS)/dagster.log" 2>&1 & \
		echo $$! > "$(RUN_DIR)/dagster-dev.pid"; \
		echo "dagster dev: http://127.0.0.1:3000, log $(LOGS)/dagster.log"; fi
ifeq ($(STREAM),)
	@if $(call alive,replay); then echo "a replay already runs (pid $$pid)"; else \
		set -m; nohup $(BIN)/mlops replay --start 2013-04-01 --end 2013-12-31 --no-reference $(PACE) \
			> "$(LOGS)/replay.log" 2>&1 & \
		echo $$! > "$(RUN_DIR)/replay.pid"; fi
else
	@if $(call alive,stream-publish); then echo "mlops stream already runs (pid $$pid)"; else \
		set -m; nohup $(BIN)/mlops stream --start 2013-04-01 --end 2013-12-31 --speed $(SPEED) \
			> "$(LOGS)/stream-publish.log" 2>&1 & \
		echo $$! > "$(RUN_DIR)/stream-publish.pid"; fi
endif
	@echo "replaying 2013-04-01..2013-12-31 ($(PACE)); progress: tail -f $(LOGS)/replay.log; summary: $(BIN)/mlops summary"

stop:
	@for name in replay stream-publish stream-consume metrics dagster-dev; do \
		if $(call alive,$$name); then \
			kill -TERM -- "-$$pid" 2>/dev/null || kill -TERM "$$pid"; \
			for _ in $$(seq 50); do kill -0 "$$pid" 2>/dev/null || break; sleep 0.2; done; \
			echo "stopped $$name (pid $$pid)"; \
		fi; \
		rm -f "$(RUN_DIR)/$$name.pid"; \
	done
	@if ls "$(MLOPS_HOME)"/cluster/run/*.pid >/dev/null 2>&1; then $(BIN)/mlops cluster down; fi

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

bench: setup
	$(BIN)/python bench/ingestion_bench.py $(ARGS)

# Re-parse the dbt project (the code location does this by itself when a dbt file changed).
dbt-manifest: setup
	$(BIN)/python -m mlops_assets.transform.dbt_project

clean:
	rm -rf data dbt/target

# Retakes docs/images/asset_graph.png in headless Chromium (apt: chromium) from a webserver it starts itself.
screenshot: setup
	$(BIN)/python scripts/screenshot_asset_graph.py docs/images/asset_graph.png
