"""Starts the sandbox binary once per session and connects the official Intuit clients to it.

The clients are used unchanged; only configuration they expose is set:
- intuit-oauth: ``environment`` = the sandbox's discovery-document URL (the library accepts a URL);
- python-quickbooks: the ``api_url_v3`` attribute (its base-URL setting);
- requests-oauthlib: ``OAUTHLIB_INSECURE_TRANSPORT=1`` because the sandbox speaks plain HTTP on loopback.
"""

import os
import urllib.parse

import pytest
import requests

os.environ.setdefault("OAUTHLIB_INSECURE_TRANSPORT", "1")

from intuitlib.client import AuthClient  # noqa: E402
from intuitlib.enums import Scopes  # noqa: E402
from quickbooks import QuickBooks  # noqa: E402

CLIENT_ID = "sandbox-client-id"
CLIENT_SECRET = "sandbox-client-secret"
VERIFIER_TOKEN = "sandbox-verifier-token"
REDIRECT_URI = "http://localhost:8765/callback"
US_REALM = "9130350000000001"
GB_REALM = "9130350000000002"


@pytest.fixture(scope="session")
def sandbox_url(start_sandbox):
    return start_sandbox("--qbo-addr", "127.0.0.1:0")["qbo"]


def control(base, method, path, body=None):
    resp = requests.request(method, base + path, json=body, timeout=10)
    resp.raise_for_status()
    return resp.json() if resp.content else None


@pytest.fixture(autouse=True)
def reset(sandbox_url):
    control(sandbox_url, "POST", "/_sandbox/reset")
    yield


@pytest.fixture
def discovery_url(sandbox_url):
    return sandbox_url + "/.well-known/openid_sandbox_configuration"


@pytest.fixture
def auth_client(discovery_url):
    return AuthClient(CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, discovery_url)


def consent(auth_client, realm_id=None):
    """Follows the authorize URL as the user would; returns (code, realmId, state)."""
    url = auth_client.get_authorization_url([Scopes.ACCOUNTING])
    if realm_id:
        url += "&" + urllib.parse.urlencode({"realm_id": realm_id})
    resp = requests.get(url, allow_redirects=False, timeout=10)
    assert resp.status_code == 302, resp.text
    params = urllib.parse.parse_qs(urllib.parse.urlparse(resp.headers["Location"]).query)
    return params["code"][0], params["realmId"][0], params["state"][0]


@pytest.fixture
def connected(auth_client):
    code, realm_id, _ = consent(auth_client)
    auth_client.get_bearer_token(code, realm_id=realm_id)
    return auth_client


@pytest.fixture
def qb(sandbox_url, connected):
    client = QuickBooks(
        auth_client=connected,
        refresh_token=connected.refresh_token,
        company_id=connected.realm_id,
        minorversion=75,
    )
    client.api_url_v3 = sandbox_url + "/v3"
    return client
