# open-streamer — common tasks. `make help` lists them.

CARGO        ?= cargo
TARGET_DIR   := $(or $(CARGO_TARGET_DIR),target)
BIN          := bin/open-streamer
CONFIG       ?= config/config.yaml
FUZZ_SECONDS ?= 20

.PHONY: help build run test test-deps lint fmt fmt-check check bench bench-quick bench-micro bench-peers bench-failover bench-transcode openapi \
        fuzz-smoke install-service uninstall-service clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

build: ## release build → bin/open-streamer
	$(CARGO) build --release -p open-streamer
	@mkdir -p bin
	cp $(TARGET_DIR)/release/open-streamer $(BIN)

run: ## run the server (JSON store in ./data, API on :8080, Swagger at /swagger/)
	$(CARGO) run --release -p open-streamer -- --config $(CONFIG)

test-deps: ## install what the tests drive (ffmpeg, chromium, systemd-analyze)
	@build/test-deps.sh

test: test-deps ## the whole test suite
	CARGO=$(CARGO) build/run-tests.sh
	build/test-install.sh

lint: ## clippy, warnings are errors
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt: ## format the code
	$(CARGO) fmt --all

fmt-check: ## fail if the code is not formatted
	$(CARGO) fmt --all -- --check

check: fmt-check lint test ## fmt + lint + test

bench: ## the benchmark suite, 3 trials per figure (long) → docs/BENCHMARKS.md
	CARGO=$(CARGO) build/bench.sh

bench-quick: ## the benchmark suite, 1 trial, small sizes (a few minutes); report in the target dir
	CARGO=$(CARGO) build/bench.sh --quick

bench-micro: ## criterion micro-benchmarks of the hub, MPEG-TS, fMP4, FLV (their own output)
	$(CARGO) bench -p os-hub -p os-mpegts -p os-fmp4 -p os-flv

bench-peers: ## install the benchmark peers (nginx-rtmp, wrk; xiu built into .tools/xiu)
	@build/bench-peers.sh

bench-failover: test-deps ## failover timeline: primary death → first backup frame (hot and cold standby)
	$(CARGO) bench -p open-streamer --bench failover

bench-transcode: test-deps ## transcoder CPU: our two-profile transcode vs the same FFmpeg commands by hand; multi vs per_profile
	$(CARGO) bench -p open-streamer --no-default-features --bench transcode

openapi: ## regenerate api/openapi.json from the code
	UPDATE_OPENAPI=1 $(CARGO) test -p os-api --test openapi

fuzz-smoke: ## run every fuzz target briefly (nightly + cargo-fuzz)
	fuzz/smoke.sh $(FUZZ_SECONDS)

install-service: build ## install as a systemd service (root)
	build/install.sh install --binary $(BIN)

uninstall-service: ## remove the service, keep data and config (root)
	build/install.sh uninstall

clean:
	$(CARGO) clean
	rm -rf bin
