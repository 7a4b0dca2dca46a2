"""OAuth through hubspot-api-client's oauth API: code exchange, refresh, metadata, errors."""

import json

import pytest
from hubspot import HubSpot
from hubspot.crm.contacts.exceptions import ApiException as ContactsApiException
from hubspot.oauth.exceptions import ApiException as OAuthApiException

from hubspot_support import CLIENT_ID, CLIENT_SECRET, PORTAL, REDIRECT_URI, SCOPES, SECOND_PORTAL, consent, control


def test_code_exchange_gives_thirty_minute_tokens(tokens, hubspot_url):
    assert tokens.token_type == "bearer"
    assert tokens.expires_in == 1800
    assert len(tokens.refresh_token) == 36
    info = HubSpot(host=hubspot_url).oauth.access_tokens_api.get(tokens.access_token)
    assert info.hub_id == PORTAL
    assert info.app_id == 54321
    assert "crm.objects.contacts.read" in info.scopes
    assert 0 < info.expires_in <= 1800
    assert info.user


def test_portal_choice_and_state_echo(hubspot_url):
    code, state = consent(hubspot_url, SCOPES, portal_id=SECOND_PORTAL, state="s-42")
    assert state == "s-42"
    client = HubSpot(host=hubspot_url)
    pair = client.oauth.tokens_api.create(
        grant_type="authorization_code", code=code, redirect_uri=REDIRECT_URI,
        client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
    )
    assert client.oauth.access_tokens_api.get(pair.access_token).hub_id == SECOND_PORTAL


def test_refresh_returns_new_access_token_same_refresh_token(tokens, hubspot_url):
    client = HubSpot(host=hubspot_url)
    again = client.oauth.tokens_api.create(
        grant_type="refresh_token", refresh_token=tokens.refresh_token,
        client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
    )
    assert again.access_token != tokens.access_token
    assert again.refresh_token == tokens.refresh_token
    HubSpot(access_token=again.access_token, host=hubspot_url).crm.contacts.basic_api.get_page()


def test_bad_refresh_token_and_reused_code(hubspot_url):
    client = HubSpot(host=hubspot_url)
    with pytest.raises(OAuthApiException) as err:
        client.oauth.tokens_api.create(
            grant_type="refresh_token", refresh_token="nope",
            client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
        )
    assert err.value.status == 400
    assert json.loads(err.value.body)["status"] == "BAD_REFRESH_TOKEN"
    code, _ = consent(hubspot_url, SCOPES)
    client.oauth.tokens_api.create(
        grant_type="authorization_code", code=code, redirect_uri=REDIRECT_URI,
        client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
    )
    with pytest.raises(OAuthApiException) as err:
        client.oauth.tokens_api.create(
            grant_type="authorization_code", code=code, redirect_uri=REDIRECT_URI,
            client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
        )
    assert json.loads(err.value.body)["status"] == "BAD_AUTH_CODE"


def test_expired_token_is_401_expired_authentication(tokens, hubspot_url):
    control(hubspot_url, "POST", "/_sandbox/clock", {"advance_seconds": 1801})
    try:
        with pytest.raises(ContactsApiException) as err:
            HubSpot(access_token=tokens.access_token, host=hubspot_url).crm.contacts.basic_api.get_page()
        assert err.value.status == 401
        assert json.loads(err.value.body)["category"] == "EXPIRED_AUTHENTICATION"
    finally:
        control(hubspot_url, "POST", "/_sandbox/clock", {"offset_seconds": 0})


def test_deleted_refresh_token_cannot_refresh(tokens, hubspot_url):
    client = HubSpot(host=hubspot_url)
    client.oauth.refresh_tokens_api.archive(tokens.refresh_token)
    with pytest.raises(OAuthApiException):
        client.oauth.tokens_api.create(
            grant_type="refresh_token", refresh_token=tokens.refresh_token,
            client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
        )


def test_missing_scope_is_403(hubspot_url):
    code, _ = consent(hubspot_url, ["oauth", "crm.objects.contacts.read"])
    pair = HubSpot(host=hubspot_url).oauth.tokens_api.create(
        grant_type="authorization_code", code=code, redirect_uri=REDIRECT_URI,
        client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
    )
    hs = HubSpot(access_token=pair.access_token, host=hubspot_url)
    from hubspot.crm.deals.exceptions import ForbiddenException
    with pytest.raises(ForbiddenException) as err:
        hs.crm.deals.basic_api.get_page()
    assert json.loads(err.value.body)["category"] == "MISSING_SCOPES"
