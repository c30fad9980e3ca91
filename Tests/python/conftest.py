"""Starts the built fleet-sim binary on an ephemeral loopback port for each test that asks."""
import json
import os
import pathlib
import subprocess
import urllib.request

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
FLEET_SIM = os.environ.get("FLEET_SIM_BIN", str(ROOT / ".build" / "debug" / "fleet-sim"))


class Sim:
    def __init__(self, url, secrets):
        self.url = url
        self.secrets = secrets

    def secret(self, name):
        return (self.secrets / name).read_text()

    def control(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.url}/_sim/{path}", data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())


@pytest.fixture
def sim(tmp_path):
    inventory = tmp_path / "fleet.yaml"
    process = subprocess.Popen(
        [FLEET_SIM, "serve", "--instances", "4", "--workspaces", "2", "--inventory-out", str(inventory)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), f"fleet-sim did not start: {process.stderr.read()}"
        yield Sim(url, pathlib.Path(str(inventory) + ".secrets"))
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
