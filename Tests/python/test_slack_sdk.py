"""A Slack client that no one here wrote, Python's slack_sdk, drives fleet-sim's Slack API."""
import json

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError


def manifest(name="W&B alerts", redirects=("https://wandb-0001.wandb.fleet-sim.test",)):
    return {
        "display_information": {"name": name},
        "oauth_config": {"redirect_urls": list(redirects), "scopes": {"bot": ["incoming-webhook"]}},
        "settings": {"allowed_ip_address_ranges": ["203.0.113.0/24"]},
    }


def client(sim, token):
    return WebClient(token=token, base_url=sim.url + "/api/")


def test_app_lifecycle(sim):
    web = client(sim, sim.secret("TSIM0001-config-token"))
    assert web.apps_manifest_validate(manifest=manifest())["ok"]

    created = web.apps_manifest_create(manifest=manifest())
    app_id = created["app_id"]
    credentials = created["credentials"]
    assert isinstance(credentials["client_id"], str) and "." in credentials["client_id"]
    assert credentials["client_secret"] and credentials["signing_secret"] and credentials["verification_token"]

    exported = web.apps_manifest_export(app_id=app_id)["manifest"]
    assert exported["oauth_config"]["redirect_urls"] == ["https://wandb-0001.wandb.fleet-sim.test"]
    assert "_metadata" in exported
    assert "client_secret" not in json.dumps(exported)

    exported["oauth_config"]["redirect_urls"].append("https://ml.fleet-sim.test")
    updated = web.apps_manifest_update(app_id=app_id, manifest=exported)
    assert updated["permissions_updated"] is True
    assert web.apps_manifest_export(app_id=app_id)["manifest"]["oauth_config"]["redirect_urls"][-1] == "https://ml.fleet-sim.test"

    assert web.apps_manifest_delete(app_id=app_id)["ok"]
    with pytest.raises(SlackApiError) as missing:
        web.apps_manifest_export(app_id=app_id)
    assert missing.value.response["error"] == "app_not_found"


def test_errors_raise_with_their_codes(sim):
    web = client(sim, sim.secret("TSIM0001-config-token"))
    with pytest.raises(SlackApiError) as invalid:
        web.apps_manifest_validate(manifest=manifest(name="x" * 36))
    assert invalid.value.response["error"] == "invalid_manifest"
    assert invalid.value.response["errors"][0]["pointer"] == "/display_information/name"

    with pytest.raises(SlackApiError) as bad_token:
        client(sim, "xoxe.xoxp-1-not-a-token").apps_manifest_validate(manifest=manifest())
    assert bad_token.value.response["error"] == "invalid_auth"

    with pytest.raises(SlackApiError) as wrong_kind:
        client(sim, sim.secret("TSIM0001-bot-token")).apps_manifest_validate(manifest=manifest())
    assert wrong_kind.value.response["error"] == "not_allowed_token_type"


def test_tier1_rate_limit_is_a_429_with_retry_after(sim):
    web = client(sim, sim.secret("TSIM0002-config-token"))
    web.apps_manifest_create(manifest=manifest())
    web.apps_manifest_create(manifest=manifest())
    with pytest.raises(SlackApiError) as limited:
        web.apps_manifest_create(manifest=manifest())
    assert limited.value.response.status_code == 429
    assert limited.value.response["error"] == "ratelimited"
    assert int(limited.value.response.headers["Retry-After"]) >= 1


def test_configuration_token_rotation(sim):
    refresh = sim.secret("TSIM0001-refresh-token")
    rotated = WebClient(base_url=sim.url + "/api/").tooling_tokens_rotate(refresh_token=refresh)
    assert rotated["token"].startswith("xoxe.xoxp-")
    assert rotated["refresh_token"].startswith("xoxe-1-")
    assert rotated["exp"] - rotated["iat"] == 43200
    assert client(sim, rotated["token"]).auth_test()["team_id"] == "TSIM0001"
    with pytest.raises(SlackApiError) as reused:
        WebClient(base_url=sim.url + "/api/").tooling_tokens_rotate(refresh_token=refresh)
    assert reused.value.response["error"] == "invalid_refresh_token"


def test_reading_the_canary_channel(sim):
    bot = client(sim, sim.secret("TSIM0001-bot-token"))
    for index in range(3):
        bot.chat_postMessage(channel="CCANARY001", text=f"canary {index}")
    history = bot.conversations_history(channel="CCANARY001", limit=2)
    assert [m["text"] for m in history["messages"]] == ["canary 2", "canary 1"]
    assert history["has_more"] is True
    rest = bot.conversations_history(channel="CCANARY001", limit=2, cursor=history["response_metadata"]["next_cursor"])
    assert [m["text"] for m in rest["messages"]] == ["canary 0"]
