"""Starts the sandbox binary once per session and points HubSpot's official Python client
(``hubspot-api-client``, unchanged) at its HubSpot API.

Only configuration the client exposes is set: ``HubSpot(access_token=..., host=<base url>)`` (the
client copies ``host`` onto every generated ``Configuration``).
"""

import os
import pathlib
import subprocess
import time
import urllib.request

import pytest
from hubspot import HubSpot

from hubspot_support import CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, SCOPES, consent, control

REPO = pathlib.Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def hubspot_url():
    binary = os.environ.get("SANDBOX_BIN", str(REPO / "target" / "debug" / "sandbox"))
    if not pathlib.Path(binary).exists():
        pytest.fail(f"sandbox binary not found at {binary}; build it or set SANDBOX_BIN")
    proc = subprocess.Popen(
        [binary, "--qbo-addr", "127.0.0.1:0", "--hubspot-addr", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = None
        deadline = time.time() + 30
        while time.time() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            if line.startswith("hubspot "):
                base = line.split()[1].strip()
                break
        if base is None:
            proc.kill()
            raise RuntimeError("sandbox did not print its HubSpot URL: " + proc.stderr.read())
        for _ in range(50):
            try:
                urllib.request.urlopen(base + "/_sandbox/health", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(autouse=True)
def reset(hubspot_url):
    control(hubspot_url, "POST", "/_sandbox/reset")
    # The suite makes many calls quickly; the rate limiter has its own tests.
    control(hubspot_url, "POST", "/_sandbox/throttle", {"enabled": False})
    yield




@pytest.fixture
def tokens(hubspot_url):
    """A token pair obtained through the official client's OAuth API."""
    code, _ = consent(hubspot_url, SCOPES)
    client = HubSpot(host=hubspot_url)
    return client.oauth.tokens_api.create(
        grant_type="authorization_code",
        code=code,
        redirect_uri=REDIRECT_URI,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
    )


@pytest.fixture
def hs(hubspot_url, tokens):
    return HubSpot(access_token=tokens.access_token, host=hubspot_url)
