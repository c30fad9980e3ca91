# SlackFleet targets for an ops repository. In its Makefile:
#
#   SLACKFLEET_INVENTORY = fleet.yaml
#   include path/to/slackfleet.mk
#
# then `make fleet-plan` (every job's dry run), `make fleet-apply`, `make fleet-verify`,
# `make fleet-rotate-tokens`, `make fleet-status`, `make fleet-report`. `make -n TARGET` prints
# the commands and runs none; `make -k` goes on with the other targets after one fails.
#
# The master key comes from the environment as for any slackfleet command:
# SLACKFLEET_MASTER_KEY, or the key file (SLACKFLEET_KEY_FILE, default <database>.key).

# The slackfleet binary.
SLACKFLEET ?= slackfleet
# The fleet database (each shard has its own).
SLACKFLEET_DB ?= slackfleet.db
# The inventory file, kept in the ops repository.
SLACKFLEET_INVENTORY ?= fleet.yaml
# Which instances the jobs work on: --all, --label env=prod, --instance NAME ...
SLACKFLEET_SELECT ?= --all
# Flags every job takes, such as --jobs-dir jobs, --max-duration 50m, --shard 1/2.
SLACKFLEET_JOB_FLAGS ?=
# verify-delivery's and rotate-secret's wait for each test alert.
SLACKFLEET_TIMEOUT ?= 90s
# This runner's shard, K/N (each shard has its own database): fleet-import takes only the
# workspaces it owns, and every later command on the database acts on them alone.
SLACKFLEET_SHARD ?=
# Where fleet-report writes the status page.
SLACKFLEET_REPORT ?= fleet.html

# Every slackfleet command below reads the database from the environment.
export SLACKFLEET_DB
SLACKFLEET_CMD = $(SLACKFLEET)

.PHONY: fleet-init fleet-import fleet-plan fleet-apply fleet-verify fleet-rotate-tokens fleet-status fleet-report

# The database and its key, once (init refuses to overwrite either).
fleet-init:
	@test -f $(SLACKFLEET_DB) || $(SLACKFLEET) init

# The inventory file into the database: all or nothing, audited.
fleet-import: fleet-init
	$(SLACKFLEET_CMD) inventory import $(SLACKFLEET_INVENTORY) $(if $(SLACKFLEET_SHARD),--shard $(SLACKFLEET_SHARD))

# Every step's dry run, changing nothing. One combined status: 0 when everything is converged,
# 2 when changes are pending, any other when a step failed (the first such status). make itself
# then says "Error 2" for pending changes and "Error N" for a failure.
fleet-plan: fleet-init
	@status=0; \
	step() { "$$@"; code=$$?; \
	  if [ $$code -eq 2 ]; then [ $$status -ne 0 ] || status=2; \
	  elif [ $$code -ne 0 ] && { [ $$status -eq 0 ] || [ $$status -eq 2 ]; }; then status=$$code; fi; }; \
	step $(SLACKFLEET_CMD) inventory import --dry-run $(SLACKFLEET_INVENTORY) $(if $(SLACKFLEET_SHARD),--shard $(SLACKFLEET_SHARD)); \
	step $(SLACKFLEET_CMD) provision-app --dry-run $(SLACKFLEET_SELECT) $(SLACKFLEET_JOB_FLAGS); \
	step $(SLACKFLEET_CMD) sync-redirects --dry-run $(SLACKFLEET_SELECT) $(SLACKFLEET_JOB_FLAGS); \
	step $(SLACKFLEET_CMD) retire --dry-run --all $(SLACKFLEET_JOB_FLAGS); \
	case $$status in 0) echo "fleet-plan: converged";; 2) echo "fleet-plan: changes pending";; *) echo "fleet-plan: a step failed (exit $$status)";; esac; \
	exit $$status

# Import, then create and register each app group's app, then bring redirect URLs in line.
fleet-apply: fleet-import
	$(SLACKFLEET_CMD) provision-app $(SLACKFLEET_SELECT) $(SLACKFLEET_JOB_FLAGS)
	$(SLACKFLEET_CMD) sync-redirects $(SLACKFLEET_SELECT) $(SLACKFLEET_JOB_FLAGS)

# A test alert from every selected instance, seen in its canary channel.
fleet-verify: fleet-init
	$(SLACKFLEET_CMD) verify-delivery $(SLACKFLEET_SELECT) --timeout $(SLACKFLEET_TIMEOUT) $(SLACKFLEET_JOB_FLAGS)

# Renew the configuration tokens that expire within 6 hours (cron: every few hours).
fleet-rotate-tokens: fleet-init
	$(SLACKFLEET_CMD) rotate-secret --config-tokens $(SLACKFLEET_SELECT) $(SLACKFLEET_JOB_FLAGS)

# The fleet at a glance, from the database alone: 0 only when everything delivers.
fleet-status: fleet-init
	$(SLACKFLEET_CMD) status

# The status page, one self-contained HTML file.
fleet-report: fleet-init
	$(SLACKFLEET_CMD) report --output $(SLACKFLEET_REPORT)
