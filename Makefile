# SlackFleet: the two commands a new user needs are `make demo` and `make test`.
SWIFT ?= swift
PYTHON ?= python3
PREFIX ?= /usr/local
DEMO_DIR ?= demo

FUZZ_SECONDS ?= 60
FUZZ_TARGETS = inventory manifest-diff responses

.PHONY: build test demo bench soak fuzz install clean

build:
	$(SWIFT) build

test:
	$(SWIFT) build --build-tests
	$(PYTHON) -m pytest -q -p no:cacheprovider Tests/python
	$(SWIFT) test --skip-build --disable-xctest

demo: build
	./scripts/demo.sh "$(DEMO_DIR)"

bench:
	$(SWIFT) build -c release --product slackfleet
	$(SWIFT) build -c release --product slackfleet-bench
	$(SWIFT) build -c release --product fleet-sim
	$(SWIFT) build -c release --product fleet-sim-bench
	@status=0; \
	./.build/release/slackfleet-bench --cli ./.build/release/slackfleet --fleet-sim ./.build/release/fleet-sim || status=1; \
	./.build/release/fleet-sim-bench --fleet-sim ./.build/release/fleet-sim || status=1; \
	exit $$status

# The long part of the reliability suite: every job against 1,000 instances under faults, with
# invariants checked from fleet-sim's state; then the fuzz targets.
soak:
	$(SWIFT) build -c release --product slackfleet
	$(SWIFT) build -c release --product fleet-sim
	$(SWIFT) build -c release --product slackfleet-soak
	./.build/release/slackfleet-soak --cli ./.build/release/slackfleet --fleet-sim ./.build/release/fleet-sim
	$(MAKE) fuzz

# libFuzzer targets, FUZZ_SECONDS each, in a build of their own (instrumented, ASan). A crash
# leaves its input in .build/fuzz/findings/TARGET/; copy it to Fuzz/regressions/TARGET/ and
# `make test` replays it from then on.
fuzz:
	$(SWIFT) build --scratch-path .build/fuzz --product slackfleet-fuzz -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING
	@status=0; for target in $(FUZZ_TARGETS); do \
	  mkdir -p .build/fuzz/corpus/$$target .build/fuzz/findings/$$target; \
	  echo "fuzzing $$target for $(FUZZ_SECONDS) s"; \
	  SWIFT_BACKTRACE=enable=no FUZZ_TARGET=$$target ./.build/fuzz/debug/slackfleet-fuzz \
	    -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
	    -artifact_prefix=.build/fuzz/findings/$$target/ .build/fuzz/corpus/$$target Fuzz/corpus/$$target 2>&1 \
	    | grep -E '^(stat::number_of_executed_units|Done|==[0-9]+==ERROR|SUMMARY)' || true; \
	  if ls .build/fuzz/findings/$$target/* >/dev/null 2>&1; then echo "FOUND: $$(ls .build/fuzz/findings/$$target)"; status=1; fi; \
	done; exit $$status

install:
	$(SWIFT) build -c release --product slackfleet
	install -d "$(PREFIX)/bin"
	install -m 0755 .build/release/slackfleet "$(PREFIX)/bin/slackfleet"

clean:
	rm -rf .build "$(DEMO_DIR)"
