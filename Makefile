# SlackFleet: the two commands a new user needs are `make demo` and `make test`.
SWIFT ?= swift
PYTHON ?= python3
PREFIX ?= /usr/local
DEMO_DIR ?= demo

.PHONY: build test demo bench install clean

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

install:
	$(SWIFT) build -c release --product slackfleet
	install -d "$(PREFIX)/bin"
	install -m 0755 .build/release/slackfleet "$(PREFIX)/bin/slackfleet"

clean:
	rm -rf .build "$(DEMO_DIR)"
