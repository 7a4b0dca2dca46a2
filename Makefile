# The front door. Prerequisites: the Rust toolchain (rustup), Python 3, make, git.
# Every target installs what it needs into this folder (.venv) or through rustup, idempotently.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV ?= $(CURDIR)/.venv
export VENV
export SAM_CLI_TELEMETRY := 0
export CARGO_TARGET_DIR ?= $(CURDIR)/target
export PATH := $(VENV)/bin:$(PATH)
ARM64_TARGET := aarch64-unknown-linux-gnu
FUNCTIONS := $(notdir $(wildcard functions/*))
DIST := $(CURDIR)/dist

.PHONY: help run demo test lint build deploy bench clean build-local venv tools-lint tools-build tools-browser register-actions register-webhooks

help:
	@echo "make run     start the local stack (local AWS endpoint, sandboxes, every function) until Ctrl-C"
	@echo "make demo    a fresh local stack: connect the demo company, sync, edit both sides, one round; prints counts"
	@echo "make test    install what the tests need (the virtualenv, Debian's chromium) and run the whole suite"
	@echo "make lint    rustfmt, clippy -D warnings, cfn-lint and sam validate --lint"
	@echo "make build   arm64 bootstrap zips for every function in dist/"
	@echo "make deploy  build, then sam deploy --guided into your AWS account (never run by CI)"
	@echo "make register-actions  publish the six workflow actions: to your HubSpot app when"
	@echo "            HUBSPOT_DEVELOPER_API_KEY, HUBSPOT_APP_ID and ACTION_URLS are set, else to a local stack's sandbox"
	@echo "make register-webhooks  register the HubSpot app's webhook subscriptions (infra/hubspot/webhooks.json):"
	@echo "            with your app when HUBSPOT_DEVELOPER_API_KEY, HUBSPOT_APP_ID and WEBHOOKS_URL are set, else with a local stack's sandbox"
	@echo "make bench   throughput, API calls and memory of the sync on the local stack (bench/results.json, README table)"
	@echo "make clean   remove build outputs and the virtualenv"

# --- tools -------------------------------------------------------------------------------
$(VENV)/.installed: tests/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt
	touch $@

venv: $(VENV)/.installed

$(VENV)/.installed-lint: infra/requirements.txt $(VENV)/.installed
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r infra/requirements.txt
	touch $@

tools-lint: $(VENV)/.installed-lint
	@rustup component list --installed | grep -q '^clippy' || rustup component add clippy
	@rustup component list --installed | grep -q '^rustfmt' || rustup component add rustfmt

# Debian's Chromium for the admin page's browser test (Playwright drives it; it downloads no
# browser of its own). Installed once: make skips this while the binary exists.
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	@if [ "$$(id -u)" -eq 0 ]; then sudo=; else sudo=sudo; fi; \
	$$sudo apt-get update && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium

tools-browser: $(CHROMIUM)

tools-build: $(VENV)/.installed-lint
	@rustup target list --installed | grep -qx '$(ARM64_TARGET)' || rustup target add $(ARM64_TARGET)

# --- local -------------------------------------------------------------------------------
build-local:
	cargo build --workspace --bins

run: venv build-local
	$(CARGO_TARGET_DIR)/debug/local-stack

demo: venv build-local
	$(CARGO_TARGET_DIR)/debug/local-stack demo

register-actions: venv build-local
	$(CARGO_TARGET_DIR)/debug/local-stack register-actions

register-webhooks: venv build-local
	$(CARGO_TARGET_DIR)/debug/local-stack register-webhooks

test: venv build-local tools-browser
	cargo test --workspace
	@if compgen -G "tests/conformance/*/test_*.py" > /dev/null; then \
		SANDBOX_BIN=$(CARGO_TARGET_DIR)/debug/sandbox $(VENV)/bin/pytest tests/conformance -q -p no:cacheprovider; \
	fi
	LOCAL_STACK_BIN=$(CARGO_TARGET_DIR)/debug/local-stack $(VENV)/bin/pytest tests/browser -q -p no:cacheprovider

# --- quality -----------------------------------------------------------------------------
lint: tools-lint
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cfn-lint infra/template.yaml
	AWS_DEFAULT_REGION=us-east-1 sam validate --lint --template-file infra/template.yaml

# --- AWS ---------------------------------------------------------------------------------
build: tools-build
	cargo lambda build --release --arm64 --output-format zip $(addprefix --package ,$(FUNCTIONS))
	mkdir -p $(DIST)
	for f in $(FUNCTIONS); do cp $(CARGO_TARGET_DIR)/lambda/$$f/bootstrap.zip $(DIST)/$$f.zip; done
	@ls -l $(DIST)

deploy: build
	AWS_DEFAULT_REGION=$${AWS_REGION:-us-east-1} sam build --beta-features --template-file infra/template.yaml
	sam deploy --guided --capabilities CAPABILITY_IAM

# BENCH_SIZE=small for a quick run; writes bench/results.json and the README's table.
bench: venv build-local
	cargo run --quiet -p bench --bin bench

clean:
	cargo clean
	rm -rf $(DIST) $(VENV) .aws-sam
