"""Starts the sandbox binary once per session and points HubSpot's official Python client
(``hubspot-api-client``, unchanged) at its HubSpot API.

Only configuration the client exposes is set: ``HubSpot(access_token=..., host=<base url>)`` (the
client copies ``host`` onto every generated ``Configuration``).
"""


import pytest
from hubspot import HubSpot

from hubspot_support import CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, SCOPES, consent, control

@pytest.fixture(scope="session")
def hubspot_url(start_sandbox):
    return start_sandbox("--qbo-addr", "127.0.0.1:0", "--hubspot-addr", "127.0.0.1:0")["hubspot"]


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
