"""Webhook notifications verified with python-quickbooks' own signature check."""

import http.server
import json
import threading
import time

import pytest

import conftest


@pytest.fixture
def receiver():
    received = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server naming)
            body = self.rfile.read(int(self.headers["Content-Length"])).decode("utf-8")
            received.append((self.headers.get("intuit-signature"), body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield "http://127.0.0.1:%d/hook" % server.server_port, received
    server.shutdown()
    server.server_close()


def wait_for(received, n):
    for _ in range(200):
        if len(received) >= n:
            return received
        time.sleep(0.05)
    return received


@pytest.mark.parametrize("fmt", ["cloud_events", "legacy"])
def test_notifications_are_signed_with_the_verifier_token(qb, sandbox_url, receiver, fmt):
    url, received = receiver
    conftest.control(sandbox_url, "POST", "/_sandbox/webhooks", {"urls": [url], "format": fmt, "aggregation_ms": 0})
    try:
        from test_quickbooks import new_customer

        customer = new_customer(qb, "Hooked Harriet")
        signature, body = wait_for(received, 1)[0]
        assert qb.validate_webhook_signature(body, signature, conftest.VERIFIER_TOKEN)
        assert not qb.validate_webhook_signature(body + " ", signature, conftest.VERIFIER_TOKEN)
        payload = json.loads(body)
        if fmt == "cloud_events":
            assert payload[0]["type"] == "qbo.customer.created.v1"
            assert payload[0]["intuitentityid"] == customer.Id
        else:
            entity = payload["eventNotifications"][0]["dataChangeEvent"]["entities"][0]
            assert (entity["name"], entity["id"], entity["operation"]) == ("Customer", customer.Id, "Create")
    finally:
        conftest.control(sandbox_url, "POST", "/_sandbox/webhooks", {"urls": []})
