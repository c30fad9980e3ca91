"""fleet-sim's manifest validation agrees with Slack's published JSON schema, as judged by
Python's jsonschema, on a corpus of generated valid and invalid manifests."""
import copy
import json
import pathlib
import random
import urllib.request

import jsonschema

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SCHEMA = json.loads((ROOT / "Sources" / "FleetSimulator" / "Slack" / "manifest.schema.1.0.0.json").read_text())
SHARED = ROOT.parent / "shared" / "reference" / "slack-manifest-schema" / "manifest.schema.1.0.0.json"


def base_manifests():
    fleet = {
        "display_information": {"name": "W&B alerts prod", "description": "Alerts from W&B"},
        "features": {"bot_user": {"display_name": "wandb", "always_online": False}},
        "oauth_config": {"redirect_urls": ["https://wandb.example.com", "https://ml.example.com"],
                         "scopes": {"bot": ["incoming-webhook"]}},
        "settings": {"allowed_ip_address_ranges": ["203.0.113.0/24"], "org_deploy_enabled": False,
                     "socket_mode_enabled": False, "token_rotation_enabled": False},
    }
    return [fleet,
            json.loads((HERE / "fixtures" / "manifest.valid.json").read_text()),
            json.loads((HERE / "fixtures" / "manifest.invalid.json").read_text())]


def mutations(rng):
    """Edits that land on both sides of the schema's limits."""
    def at(path, value):
        def apply(m):
            node = m
            for key in path[:-1]:
                node = node.setdefault(key, {}) if isinstance(node, dict) else node
            if isinstance(node, dict):
                node[path[-1]] = value
        return apply

    def drop(path):
        def apply(m):
            node = m
            for key in path[:-1]:
                if not isinstance(node, dict) or key not in node:
                    return
                node = node[key]
            if isinstance(node, dict):
                node.pop(path[-1], None)
        return apply

    n = rng.randint(0, 60)
    ip = f"{rng.randint(0, 256)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.choice(['0', '1', '07', '255'])}"
    return rng.choice([
        at(["display_information", "name"], "n" * rng.choice([0, 1, 34, 35, 36, 50])),
        at(["display_information", "description"], "d" * rng.choice([1, 139, 140, 141])),
        at(["display_information", "name"], rng.choice([42, None, True, ["x"]])),
        drop(["display_information"]),
        drop(["display_information", "name"]),
        at(["display_information", "unknown_key"], "x"),
        at(["oauth_config", "redirect_urls"], [f"https://r{i}.example.com" for i in range(rng.choice([0, 1, 999, 1000, 1001]))]),
        at(["oauth_config", "redirect_urls"], ["https://dup.example.com", "https://dup.example.com"]),
        at(["oauth_config", "redirect_urls"], ["://asdf", "http://plain.example.com", "x" * rng.choice([2500, 2501])]),
        at(["oauth_config", "redirect_urls"], "https://not-a-list.example.com"),
        at(["oauth_config", "scopes", "bot"], ["incoming-webhook"] * rng.choice([1, 2])),
        at(["oauth_config", "scopes", "bot"], ["s" * rng.choice([50, 51])]),
        at(["oauth_config", "scopes", "bot"], [f"scope{i}" for i in range(rng.choice([255, 256]))]),
        at(["settings", "allowed_ip_address_ranges"], [ip + rng.choice(["", "/0", "/24", "/32", "/33", "/024"])]),
        at(["settings", "allowed_ip_address_ranges"], [f"203.0.{i}.0/24" for i in range(rng.choice([0, 1, 10, 11, 50, 51]))]),
        at(["settings", "allowed_ip_address_ranges"], ["2001:db8::/32"]),
        at(["settings", "allowed_ip_address_ranges"], ["203.0.113.0/24", "203.0.113.0/24"]),
        at(["settings", "token_rotation_enabled"], rng.choice([True, "yes", 1])),
        at(["settings", "incoming_webhooks"], {"incoming_webhooks_enabled": rng.choice([True, "true"])}),
        at(["features", "bot_user", "display_name"], "b" * rng.choice([1, 80, 81])),
        at(["features", "bot_user"], {"always_online": True}),
        at(["_metadata"], {"major_version": rng.choice([1, 1.0, 1.5, "1"]), "minor_version": 1}),
        at(["oauth_config", "token_management_enabled"], rng.choice([True, False, "no"])),
        at(["unknown_top_level"], n),
        drop(["settings"]),
        drop(["oauth_config", "scopes"]),
    ])


def corpus(size=240, seed=20261129):
    rng = random.Random(seed)
    bases = base_manifests()
    manifests = []
    while len(manifests) < size:
        manifest = copy.deepcopy(rng.choice(bases))
        for _ in range(rng.choice([0, 1, 1, 2, 3])):
            mutations(rng)(manifest)
        manifests.append(manifest)
    return manifests


def validate_on_sim(sim, manifest):
    body = json.dumps({"manifest": manifest}).encode()
    request = urllib.request.Request(sim.url + "/api/apps.manifest.validate", data=body, method="POST", headers={
        "Content-Type": "application/json", "Authorization": "Bearer " + sim.secret("TSIM0001-config-token")})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_bundled_schema_is_slacks(sim):
    if SHARED.exists():
        assert json.loads(SHARED.read_text()) == SCHEMA


def test_verdicts_agree_with_jsonschema(sim):
    sim.control("POST", "config", {"tier_quota": {"tier3": 100000}, "tier_burst": {"tier3": 100000}})
    validator = jsonschema.Draft7Validator(SCHEMA)
    manifests = corpus()
    verdicts = {"valid": 0, "invalid": 0}
    disagreements = []
    for index, manifest in enumerate(manifests):
        expected = validator.is_valid(manifest)
        answer = validate_on_sim(sim, manifest)
        if answer["ok"] != expected:
            disagreements.append((index, expected, answer, [e.message[:100] for e in validator.iter_errors(manifest)][:3]))
        verdicts["valid" if expected else "invalid"] += 1
        if not answer["ok"]:
            assert answer["error"] == "invalid_manifest"
            assert all(error["pointer"].startswith("/") or error["pointer"] == "" for error in answer["errors"])
    assert len(manifests) >= 200
    assert verdicts["valid"] >= 50 and verdicts["invalid"] >= 50, verdicts
    assert not disagreements, disagreements[:5]
