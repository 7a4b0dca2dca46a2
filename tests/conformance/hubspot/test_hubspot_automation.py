"""Webhooks and workflow custom actions, checked with the official client's own pieces:
``hubspot.utils.signature.Signature`` validates what the sandbox sends, and the client's
automation APIs register the action and complete a BLOCKed execution."""

import http.server
import json
import queue
import threading
import time

import pytest
from hubspot import HubSpot
from hubspot.automation.actions import (
    CallbackCompletionRequest,
    FieldTypeDefinition,
    InputFieldDefinition,
    PublicActionDefinitionEgg,
    PublicActionLabels,
)
from hubspot.crm.contacts import SimplePublicObjectInputForCreate as ContactCreate
from hubspot.crm.deals import SimplePublicObjectInputForCreate as DealCreate
from hubspot.utils.signature import Signature

from hubspot_support import APP_ID, CLIENT_SECRET, control

DEVELOPER_KEY = "sandbox-hubspot-developer-key"


class Receiver:
    """A loopback HTTP server that records POSTs and answers from a script."""

    def __init__(self):
        self.got = queue.Queue()
        self.answers = queue.Queue()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
                outer.got.put((self.path, dict(self.headers), body))
                try:
                    status, answer = outer.answers.get_nowait()
                except queue.Empty:
                    status, answer = 200, {}
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def next(self, timeout=10):
        return self.got.get(timeout=timeout)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def header(headers, name):
    return next(v for k, v in headers.items() if k.lower() == name.lower())


def test_webhooks_validate_with_the_official_signature_helper(hs, hubspot_url, receiver):
    target = receiver.url + "/webhooks"
    control(hubspot_url, "POST", "/_sandbox/webhooks", {
        "target_url": target,
        "subscriptions": [{"eventType": "contact.creation"}],
    })
    created = hs.crm.contacts.basic_api.create(ContactCreate(properties={"email": "hook@example.com"}))
    path, headers, body = receiver.next()
    assert path == "/webhooks"
    assert header(headers, "X-HubSpot-Signature-Version") == "v1"
    assert Signature.is_valid(header(headers, "X-HubSpot-Signature"), CLIENT_SECRET, body, signature_version="v1")
    assert Signature.is_valid(
        header(headers, "X-HubSpot-Signature-v3"), CLIENT_SECRET, body, http_uri=target,
        signature_version="v3", timestamp=header(headers, "X-HubSpot-Request-Timestamp"),
    )
    events = json.loads(body)
    assert events[0]["subscriptionType"] == "contact.creation"
    assert str(events[0]["objectId"]) == created.id
    assert events[0]["appId"] == APP_ID


def test_custom_action_block_and_callback_with_the_official_client(hs, hubspot_url, receiver):
    action_url = receiver.url + "/actions/create-invoice"
    developer = HubSpot(api_key=DEVELOPER_KEY, host=hubspot_url)
    definition = developer.automation.actions.definitions_api.create(APP_ID, PublicActionDefinitionEgg(
        action_url=action_url,
        published=True,
        object_types=["DEAL"],
        object_request_options={"properties": ["dealname", "amount"]},
        input_fields=[InputFieldDefinition(
            is_required=True,
            supported_value_types=["STATIC_VALUE"],
            type_definition=FieldTypeDefinition(name="memo", type="string", field_type="text", options=[], external_options=False),
        )],
        labels={"en": PublicActionLabels(action_name="Create QuickBooks invoice")},
        functions=[],
    ))
    assert definition.id and definition.revision_id
    listed = developer.automation.actions.definitions_api.get_page(APP_ID)
    assert [d.id for d in listed.results] == [definition.id]

    deal = hs.crm.deals.basic_api.create(DealCreate(properties={"dealname": "Widgets", "amount": "250.00"}))
    receiver.answers.put((503, {}))
    receiver.answers.put((200, {"outputFields": {"hs_execution_state": "BLOCK", "hs_expiration_duration": "P1D"}}))
    control(hubspot_url, "POST", "/_sandbox/workflows/settings", {"retry_delays_ms": [50]})
    execution = control(hubspot_url, "POST", "/_sandbox/workflows/enroll", {
        "definition_id": definition.id, "object_type": "deals", "object_id": int(deal.id),
        "input_fields": {"memo": "thanks"},
    })
    callback_id = execution["callbackId"]
    for _ in range(2):
        path, headers, body = receiver.next()
        assert path == "/actions/create-invoice"
        assert header(headers, "X-HubSpot-Signature-Version") == "v2"
        assert Signature.is_valid(header(headers, "X-HubSpot-Signature"), CLIENT_SECRET, body,
                                  http_uri=action_url, http_method="POST", signature_version="v2")
        assert Signature.is_valid(header(headers, "X-HubSpot-Signature-v3"), CLIENT_SECRET, body, http_uri=action_url,
                                  signature_version="v3", timestamp=header(headers, "X-HubSpot-Request-Timestamp"))
        request = json.loads(body)
        assert request["callbackId"] == callback_id
        assert request["object"]["properties"]["amount"] == "250.00"
        assert request["inputFields"] == {"memo": "thanks"}
    state = None
    for _ in range(100):
        state = control(hubspot_url, "GET", f"/_sandbox/workflows/executions/{callback_id}")
        if state["state"] == "BLOCKED":
            break
        time.sleep(0.05)
    assert state["state"] == "BLOCKED"
    assert len(state["attempts"]) == 2

    hs.automation.actions.callbacks_api.complete(callback_id, CallbackCompletionRequest(
        output_fields={"hs_execution_state": "SUCCESS", "qboInvoiceId": "1043"},
    ))
    done = control(hubspot_url, "GET", f"/_sandbox/workflows/executions/{callback_id}")
    assert done["state"] == "SUCCESS"
    assert done["output_fields"]["qboInvoiceId"] == "1043"
