#!/usr/bin/env bash
# make demo: everything SlackFleet does so far, end to end, on a fresh database in ./demo
# (or the directory given as $1). Leaves the database there for you to explore:
#   .build/debug/slackfleet --database demo/fleet.db audit list
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
dir=${1:-demo}
bin="$root/.build/debug/slackfleet"
sim="$root/.build/debug/fleet-sim"
[ -x "$bin" ] && [ -x "$sim" ] || { echo "build first: swift build" >&2; exit 1; }

rm -rf "$dir"
mkdir -p "$dir"
export SLACKFLEET_DB="$dir/fleet.db"
export SLACKFLEET_KEY_FILE="$dir/fleet.key"
unset SLACKFLEET_MASTER_KEY

step() { printf '\n\033[1m== %s\033[0m\n$ %s\n' "$1" "${*:2}"; }
run() { step "$@"; "${@:2}"; }

run "Create the fleet database and its master key (both mode 0600)" \
  "$bin" init
ls -l "$SLACKFLEET_DB" "$SLACKFLEET_KEY_FILE"

run "Check the example inventory without writing anything (exit 2: changes pending)" \
  "$bin" inventory import --dry-run jobs/examples/fleet.yaml || [ $? -eq 2 ]

run "Import it: all or nothing, every change audited" \
  "$bin" inventory import jobs/examples/fleet.yaml

step "Store the secrets it refers to; values come on stdin, never argv" \
  "printf '%s' \"\$TOKEN\" | slackfleet secrets set NAME"
for name in slack/acme/config-token slack/acme/refresh-token wandb/prod-us-east/admin wandb/prod-eu-west/admin k8s/eu-west/token; do
  # Demo values only; a real fleet pipes them from its secret manager.
  head -c 24 /dev/urandom | base64 | "$bin" secrets set "$name"
done
run "List secrets: names, fingerprints and ages, never values" \
  "$bin" secrets list

run "A broken inventory is refused with every problem named, and nothing is written (exit 65)" \
  "$bin" inventory import "$root/Tests/SlackFleetCoreTests/Fixtures/inventory/bad/19-host-url-http.yaml" || [ $? -eq 65 ]

run "List the fleet, and select by label" \
  "$bin" inventory list
run "The same, only env=prod, as JSON lines" "$bin" inventory list --label env=prod --json

run "Show one instance" \
  "$bin" inventory show prod-us-east

run "The audit trail of everything above" \
  "$bin" audit list

run "Prove that no entry was changed, removed or reordered" \
  "$bin" audit verify

# Part 2: a simulated fleet. fleet-sim stands in for Slack, the W&B instances and their
# Kubernetes APIs, on a free loopback port, and writes the inventory of the fleet it serves.
step "Start fleet-sim: Slack, 24 W&B instances in 3 workspaces (4 share one app), their Kubernetes APIs" \
  "fleet-sim serve --instances 24 --workspaces 3 --app-groups 1 --group-size 4 --time-scale 60 --user-integrations 2 --inventory-out $dir/sim-fleet.yaml &"
echo "(its clock runs 60 times fast, so Slack's one app write a minute per workspace takes a second; the jobs below pace themselves to match with --pace-scale 60."
echo " On each instance two teams connect Slack alerts of their own as soon as Slack works there: the integrations a rotation must not break.)"
"$sim" serve --instances 24 --workspaces 3 --app-groups 1 --group-size 4 --time-scale 60 --user-integrations 2 --inventory-out "$dir/sim-fleet.yaml" \
  > "$dir/sim.url" 2> "$dir/sim.log" &
sim_pid=$!
trap 'kill "$sim_pid" 2>/dev/null; wait "$sim_pid" 2>/dev/null' EXIT
for _ in $(seq 1 100); do [ -s "$dir/sim.url" ] && break; sleep 0.1; done
[ -s "$dir/sim.url" ] || { echo "fleet-sim did not start:" >&2; cat "$dir/sim.log" >&2; exit 1; }
sim_url=$(head -1 "$dir/sim.url")
echo "fleet-sim is serving at $sim_url (control API: /_sim/)"
# The simulated person: what fleet-sim's control API plays in place of a human (never SlackFleet).
person() { curl -s -X POST "$sim_url/_sim/$1" -H 'Content-Type: application/json' ${2:+-d "$2"}; }

export SLACKFLEET_DB="$dir/sim.db" SLACKFLEET_KEY_FILE="$dir/sim.key"
run "A second database for the simulated fleet" "$bin" init
run "Import the inventory fleet-sim wrote (secrets are file: references beside it)" \
  "$bin" inventory import "$dir/sim-fleet.yaml"
run "The instances registered through an exec hook" "$bin" inventory list --label registrar=exec

run "provision-app, dry run: reads the real state, changes nothing, exits 2" \
  "$bin" provision-app --all --pace-scale 60 --dry-run || [ $? -eq 2 ]
run "provision-app: create each app group's Slack app, register it with every instance (Kubernetes operator v2 and v1, exec hook). Registered is not delivering: each canary awaits a person" \
  "$bin" provision-app --all --pace-scale 60 --metrics-file "$dir/provision.prom"
run "verify-delivery: no alert can reach Slack before a person connects it, so each instance says needs-connect (exit 1) and what to do" \
  "$bin" verify-delivery --label registrar=exec --pace-scale 60 --timeout 30s || [ $? -eq 1 ]

step "The connection step: slackfleet connect watches while people connect" "slackfleet connect --all --wait --timeout 2m &"
"$bin" connect --all --wait --timeout 2m > "$dir/connect.out" 2> "$dir/connect.err" &
watch_pid=$!
sleep 1
head -4 "$dir/connect.out"; echo "... ($(grep -c 'ops/settings' "$dir/connect.out") connections wait for a person)"
step "SIMULATED PERSON (fleet-sim's /_sim/connect, standing in for a human): on each instance, Connect Slack, pick #wandb-canary, Allow" \
  "curl -X POST \$FLEET_SIM/_sim/connect -d '{\"instance\": NAME, \"entity\": \"ops\"}'"
for index in $(seq 1 24); do person connect "$(printf '{"instance": "wandb-%04d", "entity": "ops"}' "$index")" > /dev/null; done
wait "$watch_pid"
echo "slackfleet connect saw them (and wrote each to the audit log):"
grep -c '^connected:' "$dir/connect.out" | xargs -I{} echo "  {} connections seen"; grep '^connected:' "$dir/connect.out" | head -3

run "Run provision-app again: nothing to do, no write call; every canary is connected" "$bin" provision-app --all --pace-scale 60
run "verify-delivery: each instance sends a test alert through its canary's integration, and its nonce is looked for in the canary channel" \
  "$bin" verify-delivery --all --pace-scale 60 --timeout 30s --metrics-file "$dir/delivery.prom"
run "One instance of the shared app group, with its Slack app" "$bin" inventory show wandb-0001

step "A DNS change: wandb-0002 gets a second name in the inventory" "edit sim-fleet.yaml; slackfleet inventory import"
sed 's|host_urls: \["https://wandb-0002.wandb.fleet-sim.test"\]|host_urls: ["https://wandb-0002.wandb.fleet-sim.test", "https://ml.fleet-sim.test"]|' \
  "$dir/sim-fleet.yaml" > "$dir/sim-fleet-dns.yaml"
"$bin" inventory import "$dir/sim-fleet-dns.yaml"
run "sync-redirects, dry run: the diff per app, exit 2" \
  "$bin" sync-redirects --all --pace-scale 60 --dry-run || [ $? -eq 2 ]
run "sync-redirects: update only the redirect URLs and IP allow-list, keep the rest of the manifest" \
  "$bin" sync-redirects --all --pace-scale 60
run "Converged: a dry run finds nothing (exit 0) and costs only exports" "$bin" sync-redirects --all --pace-scale 60 --dry-run
run "The manifest kept before the update (slackfleet apps restore N puts it back)" "$bin" apps snapshots wandb-0002
run "rotate-secret --config-tokens: renew each workspace's 12-hour configuration token (forced here with --min-remaining 13h), stored before use" \
  "$bin" rotate-secret --config-tokens --all --min-remaining 13h

run "rotate-secret --client-secret, in place, for the shared app group: Slack has no API to regenerate a secret, so it prints the link for a person and waits (exit 1)" \
  "$bin" rotate-secret --client-secret --instance wandb-0001 --pace-scale 60 || [ $? -eq 1 ]
app_id=$("$bin" inventory show wandb-0001 --json | python3 -c 'import json,sys; print([a["slack_app_id"] for a in json.load(sys.stdin)["apps"] if a["stage"] == "current"][0])')
step "SIMULATED PERSON (fleet-sim's /_sim/apps/ID/regenerate-secret): press Regenerate on $app_id's settings page, copy the secret into the store" \
  "slackfleet secrets set slack/TSIM0001/shared-1/client-secret < (the copied secret)"
person "apps/$app_id/regenerate-secret" | python3 -c 'import json,sys; sys.stdout.write(json.load(sys.stdin)["client_secret"])' \
  | "$bin" secrets set slack/TSIM0001/shared-1/client-secret
run "rotate-secret --client-secret --secret-from: the secret is probed at Slack, pushed to the group's 4 instances, kept; every Slack integration keeps delivering" \
  "$bin" rotate-secret --client-secret --secret-from secret:slack/TSIM0001/shared-1/client-secret --instance wandb-0001 --pace-scale 60 --timeout 30s
run "verify-delivery again, after the DNS change and the rotation" "$bin" verify-delivery --label simulated=true --pace-scale 60 --timeout 30s
run "The metrics file for node_exporter" cat "$dir/provision.prom"
run "The audit trail of the jobs, and its proof" "$bin" audit list --limit 12
run "Verify the simulated fleet's audit log" "$bin" audit verify
run "The fleet at a glance, from the database alone (exit 1 while anything is not delivering or waits for a person)" \
  "$bin" status || [ $? -eq 1 ]
run "The same as one self-contained HTML page" "$bin" report --output "$dir/fleet.html"

step "What happened, from the audit log and from fleet-sim's own state" "slackfleet audit list --json"
"$bin" audit list --json > "$dir/audit.jsonl"
curl -s "$sim_url/_sim/instances" > "$dir/sim-instances.json"
curl -s "$sim_url/_sim/losses" > "$dir/sim-losses.json"
python3 - "$dir/audit.jsonl" "$dir/sim-instances.json" "$dir/sim-losses.json" <<'ACCOUNT'
import json, sys
entries = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
intents = {json.loads(e["detail"]).get("change_id"): e for e in entries if e["phase"] == "intent"}
applied = [intents[json.loads(e["detail"])["change_id"]] for e in entries if e["phase"] == "applied" and json.loads(e["detail"]).get("change_id") in intents]
def count(action, prefix): return sum(1 for e in applied if e["action"] == action and e["target"].startswith(prefix))
print(f"- {count('create', 'slack:app/')} Slack apps created: one per app group")
print(f"- {count('update', 'k8s:') + count('restart', 'k8s:')} Kubernetes writes and {count('register', 'exec:')} exec hook runs registered their credentials")
print(f"- {sum(1 for e in entries if e['phase'] == 'observed')} connections made by the (simulated) people, seen and recorded; SlackFleet made none itself")
print(f"- {count('update-redirects', 'slack:app/')} app manifest updated for the DNS change, everything else in it kept")
print(f"- {count('rotate', 'slack:config-token/')} configuration tokens rotated; {count('store-secret', 'db:app/')} client secret rotated in place")
print(f"- {len(entries)} audit entries, hash-chained under a signed head: audit verify passed above")
instances = json.load(open(sys.argv[2]))
losses = json.load(open(sys.argv[3]))
integrations = sum(len(i["integrations"]) for i in instances)
print(f"- fleet-sim's own view: {sum(i['can_deliver'] for i in instances)} of {len(instances)} canaries deliver; "
      f"{integrations} Slack integrations, {losses['total']} of them lost")
ACCOUNT

kill "$sim_pid"; wait "$sim_pid" 2>/dev/null || true
trap - EXIT
echo "fleet-sim stopped."

printf '\nThe fleet status page: %s (open it in a browser; it needs no network).\n' "$dir/fleet.html"
printf '\nDone. The databases are %s and %s; try:\n  %s audit list\n' \
  "$dir/fleet.db" "$dir/sim.db" "SLACKFLEET_DB=$dir/fleet.db SLACKFLEET_KEY_FILE=$dir/fleet.key $bin"
