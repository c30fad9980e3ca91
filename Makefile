# SlackFleet: the two commands a new user needs are `make demo` and `make test`.
SWIFT ?= swift
PYTHON ?= python3
PREFIX ?= /usr/local
DEMO_DIR ?= demo

FUZZ_SECONDS ?= 60
FUZZ_TARGETS = inventory manifest-diff responses

.PHONY: build test demo bench soak fuzz install clean

# The release slackfleet (bench, soak, install) links the Swift runtime and Foundation into the
# binary, as Swift's advice for Linux executables goes: a run starts about 4 ms sooner, with
# no symbols to look up in a dozen shared libraries. The toolchain's lld links it (gold warns
# about a use of mktemp inside Foundation's static library), in a build directory of its own;
# without lld it is linked as the other release products are, against the shared libraries.
SWIFT_LLD ?= $(shell command -v ld.lld 2>/dev/null)
RELEASE_TOOLSET = .build/release-toolset.json
CLI_BUILD = $(if $(SWIFT_LLD),--scratch-path .build/static --static-swift-stdlib --toolset $(RELEASE_TOOLSET))
CLI = $(if $(SWIFT_LLD),.build/static,.build)/release/slackfleet
CLI_DEPS = $(if $(SWIFT_LLD),$(RELEASE_TOOLSET))

$(RELEASE_TOOLSET):
	@mkdir -p .build
	@printf '{"schemaVersion": "1.0", "linker": {"path": "%s"}}\n' "$(SWIFT_LLD)" > $@

build:
	$(SWIFT) build

test:
	$(SWIFT) build --build-tests
	$(SWIFT) build --product generate-manual
	$(PYTHON) -m pytest -q -p no:cacheprovider Tests/python
	$(SWIFT) test --skip-build --disable-xctest

demo: build
	./scripts/demo.sh "$(DEMO_DIR)"

bench: $(CLI_DEPS)
	$(SWIFT) build -c release $(CLI_BUILD) --product slackfleet
	$(SWIFT) build -c release --product slackfleet-bench
	$(SWIFT) build -c release --product fleet-sim
	$(SWIFT) build -c release --product fleet-sim-bench
	@status=0; \
	./.build/release/slackfleet-bench --cli ./$(CLI) --fleet-sim ./.build/release/fleet-sim || status=1; \
	./.build/release/fleet-sim-bench --fleet-sim ./.build/release/fleet-sim || status=1; \
	exit $$status

# The long part of the reliability suite: every job against 1,000 instances under faults, with
# invariants checked from fleet-sim's state; then the fuzz targets.
soak: $(CLI_DEPS)
	$(SWIFT) build -c release $(CLI_BUILD) --product slackfleet
	$(SWIFT) build -c release --product fleet-sim
	$(SWIFT) build -c release --product slackfleet-soak
	./.build/release/slackfleet-soak --cli ./$(CLI) --fleet-sim ./.build/release/fleet-sim
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

# The binary, its shell completions (bash, zsh, fish) and its man pages, under $(PREFIX).
# INSTALL_BIN: install that binary instead of building the release one; GENERATE_MANUAL: the
# man page generator already built (the tests pass both: they cannot build while swift test runs).
INSTALL_BIN ?=
INSTALLED_BIN = $(or $(INSTALL_BIN),$(CLI))
GENERATE_MANUAL ?=
install: $(CLI_DEPS)
	$(if $(INSTALL_BIN),,$(SWIFT) build -c release $(CLI_BUILD) --product slackfleet)
	$(if $(GENERATE_MANUAL),,$(SWIFT) build --product generate-manual)
	install -d "$(PREFIX)/bin" "$(PREFIX)/share/bash-completion/completions" "$(PREFIX)/share/zsh/site-functions" \
		"$(PREFIX)/share/fish/vendor_completions.d" "$(PREFIX)/share/man/man1"
	install -m 0755 $(INSTALLED_BIN) "$(PREFIX)/bin/slackfleet"
	"$(PREFIX)/bin/slackfleet" --generate-completion-script bash > "$(PREFIX)/share/bash-completion/completions/slackfleet"
	"$(PREFIX)/bin/slackfleet" --generate-completion-script zsh > "$(PREFIX)/share/zsh/site-functions/_slackfleet"
	"$(PREFIX)/bin/slackfleet" --generate-completion-script fish > "$(PREFIX)/share/fish/vendor_completions.d/slackfleet.fish"
	$(or $(GENERATE_MANUAL),$$($(SWIFT) build --product generate-manual --show-bin-path)/generate-manual) "$(PREFIX)/bin/slackfleet" --multi-page \
		--output-directory "$(PREFIX)/share/man/man1"

clean:
	rm -rf .build "$(DEMO_DIR)"
