"""intuit-oauth against the sandbox: discovery, consent, code exchange, rotation, revoke."""

import pytest
from intuitlib.exceptions import AuthClientError

from conftest import GB_REALM, US_REALM, consent


def test_discovery_document_configures_the_client(auth_client, sandbox_url):
    assert auth_client.auth_endpoint == sandbox_url + "/connect/oauth2"
    assert auth_client.token_endpoint == sandbox_url + "/oauth2/v1/tokens/bearer"
    assert auth_client.revoke_endpoint == sandbox_url + "/v2/oauth2/tokens/revoke"
    assert auth_client.user_info_url == sandbox_url + "/v1/openid_connect/userinfo"


def test_code_exchange_and_refresh_rotation(auth_client):
    code, realm_id, state = consent(auth_client)
    assert realm_id == US_REALM
    assert state == auth_client.state_token
    auth_client.get_bearer_token(code, realm_id=realm_id)
    assert auth_client.expires_in == 3600
    assert auth_client.x_refresh_token_expires_in == 8726400
    first = auth_client.refresh_token
    auth_client.refresh()
    assert auth_client.refresh_token != first
    with pytest.raises(AuthClientError) as err:
        auth_client.refresh(refresh_token=first)
    assert err.value.status_code == 400
    assert b"invalid_grant" in err.value.content


def test_user_picks_a_company(auth_client):
    _, realm_id, _ = consent(auth_client, realm_id=GB_REALM)
    assert realm_id == GB_REALM


def test_user_info_and_revoke(connected):
    info = connected.get_user_info().json()
    assert info["realmid"] == US_REALM
    assert connected.revoke() is True
    with pytest.raises(AuthClientError):
        connected.refresh()


def test_wrong_secret_is_invalid_client(discovery_url):
    from intuitlib.client import AuthClient

    bad = AuthClient("sandbox-client-id", "wrong", "http://localhost:8765/callback", discovery_url)
    code, realm_id, _ = consent(bad)
    with pytest.raises(AuthClientError) as err:
        bad.get_bearer_token(code, realm_id=realm_id)
    assert err.value.status_code == 401
    assert b"invalid_client" in err.value.content
