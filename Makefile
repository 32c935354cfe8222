# Session Warden: every target bootstraps what it needs (scripts/bootstrap.sh is idempotent).
.DEFAULT_GOAL := help
VENV := .venv/bin
PYTEST_ARGS ?=

.PHONY: help bootstrap run test test-fast contracts lint typecheck gas bench bench-indexer bench-rules bench-executor bench-latency bench-storm bench-memory bench-takeover bench-prepare bench-export bench-api bench-notify bench-prune chaos clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

bootstrap: ## create .venv and node_modules from the repository's pinned files
	@scripts/bootstrap.sh

# anvil's public account #1: the operator the devnet deployment trusts (devnet only)
DEVNET_KEY := 0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d

run: bootstrap ## devnet + daemon + activity: every rule fires within ~2 minutes (Ctrl-C stops)
	@WARDEN_DEVNET_KEY=$(DEVNET_KEY) $(VENV)/warden run --config config/devnet.yaml

test: bootstrap ## run the whole test suite (real anvil, SQLite, PostgreSQL, headless Chromium)
	@$(VENV)/pytest $(PYTEST_ARGS)

test-fast: bootstrap ## the tests that need no anvil (`-m "not chain"`, about a minute)
	@$(VENV)/pytest -m "not chain and not chaos" $(PYTEST_ARGS)

contracts: bootstrap ## compile contracts/ with the pinned solc into contracts/artifacts/
	@$(VENV)/python scripts/build_contracts.py

lint: bootstrap ## ruff, mypy and the import contracts (lint-imports)
	@$(VENV)/ruff check .
	@$(VENV)/ruff format --check .
	@$(VENV)/mypy
	@$(VENV)/lint-imports

gas: bootstrap ## measure contract gas figures on anvil and print them (see docs/gas.md)
	@$(VENV)/python scripts/gas_report.py

bench: bootstrap ## every figure in BENCHMARKS.md, several runs each (~30 min; the first run also builds the cached chains, ~20 min more)
	@$(VENV)/python scripts/bench_indexer.py --runs 3
	@$(VENV)/python scripts/bench_latency.py
	@$(VENV)/python scripts/bench_storm.py
	@$(VENV)/python scripts/bench_memory.py
	@$(VENV)/python scripts/bench_rules.py
	@$(VENV)/python scripts/bench_executor.py
	@$(VENV)/python scripts/bench_takeover.py
	@$(VENV)/python scripts/bench_prepare.py
	@$(VENV)/python scripts/bench_export.py
	@$(VENV)/python scripts/bench_api.py
	@$(VENV)/python scripts/bench_notify.py
	@$(VENV)/python scripts/bench_prune.py

chaos: bootstrap ## the long fault scenarios: 100 kill -9, 1,000 reorgs, 20 % RPC faults, a lying node, 50 leader failovers on PostgreSQL (real anvil), 10,000 contract property sequences; summary in .cache/chaos/summary.txt
	@$(VENV)/pytest -m chaos tests/chaos $(PYTEST_ARGS)
	@WARDEN_PROPERTY_EXAMPLES=10000 $(VENV)/pytest tests/contracts/test_wallet_properties.py \
		$(PYTEST_ARGS)
	@WARDEN_CONFIG_EXAMPLES=20000 WARDEN_YAML_EXAMPLES=20000 WARDEN_API_FUZZ_EXAMPLES=200 \
		WARDEN_PREPARE_EXAMPLES=2000 \
		WARDEN_RULES_EXAMPLES=20 $(VENV)/pytest tests/warden/app/test_config_fuzz.py \
		tests/yamlsource tests/warden/app/api/test_fuzz.py tests/rules/test_fuzz_loader.py \
		tests/warden/app/api/test_prepare_fuzz.py tests/warden/app/api/test_prepare_properties.py \
		$(PYTEST_ARGS)

bench-indexer: bootstrap ## backfill benchmark on a cached seeded chain (see BENCHMARKS.md)
	@$(VENV)/python scripts/bench_indexer.py

bench-prepare: bootstrap ## latency and node calls of the POST /prepare/... routes against anvil
	@$(VENV)/python scripts/bench_prepare.py

bench-rules: bootstrap ## rule evaluation benchmark (see BENCHMARKS.md)
	@$(VENV)/python scripts/bench_rules.py

bench-executor: bootstrap ## executor benchmark: intents/s and gas, singles vs batched
	@$(VENV)/python scripts/bench_executor.py

bench-latency: bootstrap ## stop-loss reaction latency with 10,000 active sessions (p50, p99)
	@$(VENV)/python scripts/bench_latency.py

bench-notify: bootstrap ## notification event -> webhook POST latency on loopback (p50, p99), delivery throughput
	@$(VENV)/python scripts/bench_notify.py

bench-prune: bootstrap ## notification retention: one pruning batch, a pass over 100,000 events, the loop's commits beside it
	@$(VENV)/python scripts/bench_prune.py

bench-storm: bootstrap ## 100,000 sessions expiring in one block: time until all closed on chain
	@$(VENV)/python scripts/bench_storm.py

bench-memory: bootstrap ## daemon RSS with 100,000 and 1,000,000 tracked sessions
	@$(VENV)/python scripts/bench_memory.py

bench-export: bootstrap ## warden db export of 1,000,000 sessions: peak RSS and rows/s; backup time
	@$(VENV)/python scripts/bench_export.py

bench-api: bootstrap ## the HTTP API with 200 clients while the daemon follows a devnet with activity
	@$(VENV)/python scripts/bench_api.py

bench-takeover: bootstrap ## two replicas on PostgreSQL: kill -9 of the leader -> first close by the new one (20 takeovers)
	@$(VENV)/python scripts/bench_takeover.py

clean: ## remove the virtualenv, node_modules and caches
	rm -rf .venv node_modules .bootstrap .pytest_cache .mypy_cache .ruff_cache .hypothesis .cache
