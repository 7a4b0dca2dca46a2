"""The webhooks management API (``/webhooks/v3/{appId}/…``) through the official client's
``webhooks.settings_api`` / ``subscriptions_api``, which authenticate with the developer API key
(``?hapikey=``) only, and the deliveries that what it registers produces — checked with the
client's own ``Signature`` helper."""

import json

import pytest
import requests
from hubspot import HubSpot
from hubspot.crm.contacts import SimplePublicObjectInputForCreate as ContactCreate
from hubspot.utils.signature import Signature
from hubspot.webhooks import (
    ApiException,
    BatchInputSubscriptionBatchUpdateRequest,
    SettingsChangeRequest,
    SubscriptionBatchUpdateRequest,
    SubscriptionCreateRequest,
    SubscriptionPatchRequest,
    ThrottlingSettings,
)

from hubspot_support import APP_ID, CLIENT_SECRET, PORTAL, control
from test_hubspot_automation import DEVELOPER_KEY, Receiver, header


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def developer(hubspot_url):
    return HubSpot(api_key=DEVELOPER_KEY, host=hubspot_url)


def test_settings_and_subscriptions_round_trip(developer, hubspot_url, receiver):
    settings_api = developer.webhooks.settings_api
    subscriptions = developer.webhooks.subscriptions_api
    with pytest.raises(ApiException) as missing:
        settings_api.get_all(APP_ID)
    assert missing.value.status == 404

    target = receiver.url + "/hooks"
    configured = settings_api.configure(APP_ID, SettingsChangeRequest(
        target_url=target, throttling=ThrottlingSettings(max_concurrent_requests=7)))
    assert configured.target_url == target
    assert configured.throttling.max_concurrent_requests == 7
    assert configured.created_at is not None and configured.updated_at is not None
    read = settings_api.get_all(APP_ID)
    assert (read.target_url, read.throttling.max_concurrent_requests) == (target, 7)

    created = subscriptions.create(APP_ID, SubscriptionCreateRequest(event_type="contact.creation"))
    assert created.active is False  # HubSpot's default
    email = subscriptions.create(APP_ID, SubscriptionCreateRequest(
        event_type="contact.propertyChange", property_name="email", active=True))
    invoices = subscriptions.create(APP_ID, SubscriptionCreateRequest(
        event_type="object.creation", object_type_id="0-53", active=True))
    assert (invoices.event_type, invoices.object_type_id) == ("object.creation", "0-53")
    assert email.property_name == "email"

    patched = subscriptions.update(created.id, APP_ID, SubscriptionPatchRequest(active=True))
    assert patched.active is True
    batch = subscriptions.update_batch(APP_ID, BatchInputSubscriptionBatchUpdateRequest(inputs=[
        SubscriptionBatchUpdateRequest(id=int(invoices.id), active=False)]))
    assert batch.status == "COMPLETE"
    assert [(s.id, s.active) for s in batch.results] == [(invoices.id, False)]
    assert subscriptions.get_by_id(invoices.id, APP_ID).active is False

    subscriptions.archive(email.id, APP_ID)
    with pytest.raises(ApiException) as gone:
        subscriptions.get_by_id(email.id, APP_ID)
    assert gone.value.status == 404
    listed = subscriptions.get_all(APP_ID).results
    assert sorted((s.id, s.event_type, s.active) for s in listed) == sorted([
        (created.id, "contact.creation", True), (invoices.id, "object.creation", False)])

    # The control API sees the same settings, so this is what the sandbox delivers.
    hooks = control(hubspot_url, "GET", "/_sandbox/webhooks")
    assert hooks["target_url"] == target
    assert sorted(str(s["id"]) for s in hooks["subscriptions"]) == sorted([created.id, invoices.id])

    settings_api.clear(APP_ID)
    with pytest.raises(ApiException) as cleared:
        settings_api.get_all(APP_ID)
    assert cleared.value.status == 404
    assert len(subscriptions.get_all(APP_ID).results) == 2


def test_errors_are_hubspot_shaped(developer, hubspot_url):
    subscriptions = developer.webhooks.subscriptions_api
    with pytest.raises(ApiException) as wrong_app:
        subscriptions.get_all(APP_ID + 1)
    assert wrong_app.value.status == 404
    assert json.loads(wrong_app.value.body)["category"] == "OBJECT_NOT_FOUND"
    with pytest.raises(ApiException) as no_type:
        subscriptions.create(APP_ID, SubscriptionCreateRequest(event_type="object.creation"))
    assert no_type.value.status == 400
    body = json.loads(no_type.value.body)
    assert body["category"] == "VALIDATION_ERROR" and "objectTypeId" in body["message"]
    with pytest.raises(ApiException) as no_property:
        subscriptions.create(APP_ID, SubscriptionCreateRequest(event_type="deal.propertyChange"))
    assert no_property.value.status == 400
    stranger = HubSpot(api_key="not-the-key", host=hubspot_url)
    with pytest.raises(ApiException) as unauthorized:
        stranger.webhooks.subscriptions_api.get_all(APP_ID)
    assert unauthorized.value.status == 401


def test_registered_subscriptions_are_delivered_signed(developer, hs, hubspot_url, receiver):
    target = receiver.url + "/hooks"
    developer.webhooks.settings_api.configure(APP_ID, SettingsChangeRequest(
        target_url=target, throttling=ThrottlingSettings(max_concurrent_requests=10)))
    sub = developer.webhooks.subscriptions_api.create(APP_ID, SubscriptionCreateRequest(
        event_type="contact.creation", active=True))
    created = hs.crm.contacts.basic_api.create(ContactCreate(properties={"email": "managed@example.com"}))
    path, headers, body = receiver.next()
    assert path == "/hooks"
    assert Signature.is_valid(header(headers, "X-HubSpot-Signature"), CLIENT_SECRET, body, signature_version="v1")
    assert Signature.is_valid(
        header(headers, "X-HubSpot-Signature-v3"), CLIENT_SECRET, body, http_uri=target,
        signature_version="v3", timestamp=header(headers, "X-HubSpot-Request-Timestamp"),
    )
    event = json.loads(body)[0]
    assert (event["subscriptionType"], str(event["subscriptionId"]), str(event["objectId"])) == (
        "contact.creation", sub.id, created.id)


def test_a_user_uninstall_reaches_app_uninstall_subscribers(hs, hubspot_url, receiver):
    # `app.uninstall` is the sandbox's (UNCONFIRMED) lifecycle type: not in the client's enum, so
    # this client skips its client-side validation.
    developer = HubSpot(api_key=DEVELOPER_KEY, host=hubspot_url, client_side_validation=False)
    target = receiver.url + "/hooks"
    developer.webhooks.settings_api.configure(APP_ID, SettingsChangeRequest(
        target_url=target, throttling=ThrottlingSettings(max_concurrent_requests=10)))
    sub = developer.webhooks.subscriptions_api.create(APP_ID, SubscriptionCreateRequest(
        event_type="app.uninstall", active=True))
    assert sub.event_type == "app.uninstall"
    control(hubspot_url, "POST", f"/_sandbox/portals/{PORTAL}/uninstall")
    path, headers, body = receiver.next()
    assert Signature.is_valid(
        header(headers, "X-HubSpot-Signature-v3"), CLIENT_SECRET, body, http_uri=target,
        signature_version="v3", timestamp=header(headers, "X-HubSpot-Request-Timestamp"),
    )
    events = json.loads(body)
    assert len(events) == 1
    event = events[0]
    assert {k: event[k] for k in ("subscriptionType", "portalId", "appId", "attemptNumber")} == {
        "subscriptionType": "app.uninstall", "portalId": PORTAL, "appId": APP_ID, "attemptNumber": 0}
    assert str(event["subscriptionId"]) == sub.id
    # The portal's tokens are dead.
    resp = requests.get(hubspot_url + "/crm/v3/objects/contacts",
                        headers={"Authorization": f"Bearer {hs.access_token}"}, timeout=10)
    assert resp.status_code == 401
