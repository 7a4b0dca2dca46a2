"""Shared helpers of the HubSpot conformance suite (a uniquely named module, so that it never
collides with the QBO suite's ``conftest``)."""

import urllib.parse

import requests

CLIENT_ID = "sandbox-hubspot-client-id"
CLIENT_SECRET = "sandbox-hubspot-client-secret"
APP_ID = 54321
REDIRECT_URI = "http://localhost:8765/callback"
PORTAL = 62515
SECOND_PORTAL = 62516

def control(base, method, path, body=None):
    resp = requests.request(method, base + path, json=body, timeout=30)
    resp.raise_for_status()
    return resp.json() if resp.content else None


def consent(base, scopes, portal_id=None, state="xyz"):
    """Follows the authorize URL as the user would; returns (code, state)."""
    params = {
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "scope": " ".join(scopes),
        "state": state,
    }
    if portal_id:
        params["portal_id"] = portal_id
    url = base + "/oauth/authorize?" + urllib.parse.urlencode(params, quote_via=urllib.parse.quote)
    resp = requests.get(url, allow_redirects=False, timeout=10)
    assert resp.status_code == 302, resp.text
    query = urllib.parse.parse_qs(urllib.parse.urlparse(resp.headers["Location"]).query)
    return query["code"][0], query["state"][0]


SCOPES = [
    "oauth",
    "crm.objects.contacts.read",
    "crm.objects.contacts.write",
    "crm.objects.companies.read",
    "crm.objects.companies.write",
    "crm.objects.deals.read",
    "crm.objects.deals.write",
    "crm.objects.products.read",
    "crm.objects.products.write",
    "crm.objects.line_items.read",
    "crm.objects.line_items.write",
    "crm.objects.invoices.read",
    "crm.objects.invoices.write",
    "crm.objects.commercepayments.read",
    "crm.objects.commercepayments.write",
    "crm.schemas.contacts.write",
    "crm.schemas.companies.write",
    "crm.schemas.deals.write",
    "crm.schemas.products.write",
    "crm.schemas.line_items.write",
    "crm.schemas.invoices.write",
    "automation",
]
