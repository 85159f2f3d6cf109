# CoRAL reproduction kit. The two commands a user needs:
#   make test        unit tests, fuzz smokes, namespace integration tests
#   make reproduce   every experiment, figures and results/REPORT.md
# QUICK=1 runs every experiment in its short shape; RESULTS=dir FIGURES=dir
# write elsewhere; AGAINST=dir compares with an earlier run (docs/CLI.md).

CARGO ?= cargo
QUICK ?=
# netns (default) or docker: the topology `make reproduce` runs on.
TOPOLOGY ?= netns
RELEASE_BIN := target/release
QUICK_FLAG := $(if $(QUICK),--quick,)

.PHONY: all build release deps test test-unit test-netns test-fuzz reproduce campaign fuzz fmt clippy clean

all: build

## Install what the kit needs on a fresh Debian machine (idempotent).
deps:
	bash scripts/install-deps.sh

build:
	$(CARGO) build --workspace --all-targets

release:
	$(CARGO) build --workspace --release

## Everything: unit, property and loopback integration tests (parallel),
## then namespace tests (one at a time), then a short fuzz smoke.
test: deps build test-unit test-netns test-fuzz

## Every test whose name does not start with netns_ (those need namespaces
## and run one at a time in test-netns).
test-unit:
	$(CARGO) test --workspace -- --skip netns_

## A few seconds per fuzz target (make fuzz runs longer). Fails on a
## finding and on a target that made no runs.
test-fuzz:
	FUZZ_SECONDS=$(or $(FUZZ_SECONDS),3) bash scripts/fuzz-smoke.sh

## Namespace integration tests share 2 cores: one at a time. Fails if none ran.
test-netns:
	bash scripts/test-netns.sh

reproduce: deps release
	TOPOLOGY=$(TOPOLOGY) bash scripts/reproduce.sh $(QUICK_FLAG)

## The fault campaign at length: TRIALS (default 200) randomized single
## faults against fresh CoRAL pairs from seed SEED (default 1), each decided
## by the checker; RESULTS/fault-campaign/trials.csv (docs/CLI.md). Prints
## its time; fails if any trial missed the standard.
campaign: deps release
	time $(RELEASE_BIN)/coral-exp run fault-campaign --trials $(or $(TRIALS),200) \
		--seed $(or $(SEED),1) --results $(or $(RESULTS),results)

## Fuzz every parser and codec, FUZZ_SECONDS each (default 60); prints runs,
## coverage and findings per target and writes them to RESULTS/fuzz/fuzz.csv
## (the report's Fuzzing section).
fuzz:
	FUZZ_SECONDS=$(or $(FUZZ_SECONDS),60) FUZZ_CSV=$(or $(RESULTS),results)/fuzz/fuzz.csv \
		bash scripts/fuzz-smoke.sh

fmt:
	$(CARGO) fmt --all

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

clean:
	$(CARGO) clean
