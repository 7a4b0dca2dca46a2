"""A user disconnecting the app from inside QuickBooks (the control API's
``/_sandbox/realms/{realm}/disconnect``): the official clients see every token of the company die,
and the app's disconnect URL gets the browser's GET."""

import http.server
import threading
import urllib.parse

import pytest
import requests
from intuitlib.exceptions import AuthClientError
from quickbooks.exceptions import AuthorizationException
from quickbooks.objects.customer import Customer

import conftest


@pytest.fixture
def disconnect_page():
    """A loopback page that records each GET's query and answers 200."""
    visits = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server naming)
            visits.append(urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield "http://127.0.0.1:%d/quickbooks/disconnected" % server.server_port, visits
    server.shutdown()
    server.server_close()


def test_a_disconnect_kills_the_tokens_and_visits_the_disconnect_url(qb, connected, sandbox_url, disconnect_page):
    url, visits = disconnect_page
    assert Customer.all(qb=qb) == []  # connected (the default companies have no customers)
    settings = conftest.control(sandbox_url, "GET", "/_sandbox/webhooks")
    assert settings["disconnect_url"] is None
    conftest.control(sandbox_url, "POST", "/_sandbox/webhooks", dict(settings, disconnect_url=url))

    answer = conftest.control(sandbox_url, "POST", f"/_sandbox/realms/{conftest.US_REALM}/disconnect")
    assert answer == {"realm_id": conftest.US_REALM, "disconnect_url_status": 200}
    assert visits == [{"realmId": [conftest.US_REALM]}]
    with pytest.raises(AuthorizationException):
        Customer.all(qb=qb)
    with pytest.raises(AuthClientError) as err:
        connected.refresh()
    assert err.value.status_code == 400


def test_without_a_disconnect_url_only_the_tokens_die(connected, sandbox_url):
    answer = conftest.control(sandbox_url, "POST", f"/_sandbox/realms/{conftest.US_REALM}/disconnect")
    assert answer == {"realm_id": conftest.US_REALM, "disconnect_url_status": None}
    with pytest.raises(AuthClientError):
        connected.refresh()


def test_an_unknown_company_is_404(sandbox_url):
    resp = requests.post(sandbox_url + "/_sandbox/realms/42/disconnect", timeout=10)
    assert resp.status_code == 404
