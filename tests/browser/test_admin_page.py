"""The admin page in a real browser, against the local stack (`make test` runs it).

One local stack for the session (`local-stack --schedule-every 5`: the sandboxes, the local AWS
endpoint and every function, with the demo company connected), one headless Chromium (Debian's,
at /usr/bin/chromium; Playwright drives it, it downloads no browser of its own). The tests run
in file order and share one signed-in browser context, as a person's visit would go:

    signed out -> sign in -> connections -> object view (counts = API) -> record view filtered
    (rows = API) -> a record's activity -> CSV export (rows = API) -> retry -> settings
    (preview, save, confirm dialog)

Every page's console errors fail the test that was on it. Full-page screenshots of every screen
go to tests/browser/artifacts/ (with the stack's log, local-stack.log).
"""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Page, sync_playwright

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
ARTIFACTS = HERE / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
READY_TIMEOUT = 240  # seconds until the stack prints "Ready."
SETTLE_TIMEOUT = 180  # seconds until the demo's sync stops moving
STATUSES = ("synced", "failing", "excluded", "pending")
OBJECTS = ("contact", "product", "invoice")


# --- the local stack -------------------------------------------------------------------------


@dataclass
class Stack:
    process: subprocess.Popen
    log: Path
    lines: deque = field(default_factory=lambda: deque(maxlen=400))
    ready: threading.Event = field(default_factory=threading.Event)
    admin: str = ""  # ends with "/"
    operator_key: str = ""
    connection: str = ""
    portal: str = ""
    realm: str = ""
    hubspot: str = ""  # sandbox base URL, no trailing "/"
    qbo: str = ""

    def tail(self, n: int = 60) -> str:
        return "\n".join(list(self.lines)[-n:])

    # The admin JSON API, as the operator.
    def api(self, method: str, path: str, body=None, headers=None):
        headers = {"Authorization": f"Bearer {self.operator_key}", **(headers or {})}
        return http(method, self.admin + path.lstrip("/"), body, headers)

    def api_ok(self, path: str, **query):
        query = {k: v for k, v in query.items() if v not in (None, "")}
        if query:
            path += "?" + urllib.parse.urlencode(query)
        status, answer = self.api("GET", path)
        assert status == 200, f"GET {path}: {status} {answer}"
        return answer

    def overview_counts(self) -> dict:
        overview = self.api_ok(f"api/connections/{self.connection}/overview")
        return {o["object"]: {s: int(o["counts"][s]) for s in STATUSES} for o in overview["objects"]}

    def records(self, object_: str, **query) -> dict:
        return self.api_ok(f"api/connections/{self.connection}/records/{object_}", **query)

    def record(self, object_: str, side: str, record_id: str) -> dict:
        return self.api_ok(f"api/connections/{self.connection}/records/{object_}/{side}/{record_id}")

    def settings(self, object_: str) -> dict:
        return self.api_ok(f"api/connections/{self.connection}/settings/{object_}")


def http(method: str, url: str, body=None, headers=None):
    """(status, JSON answer or text) of one request; `body` is sent as JSON."""
    data = None
    headers = dict(headers or {})
    if body is not None:
        data = json.dumps(body).encode()
        headers.setdefault("Content-Type", "application/json")
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read().decode()
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def wait_for(what: str, check, timeout: float, every: float = 1.0):
    """Calls `check` until it answers something true; answers that."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


def wait_settled(stack: Stack, quiet: float = 12.0) -> dict:
    """Waits until the overview's counts stay the same for `quiet` seconds (more than two rounds
    of the 5-second schedule) with some records synced; answers the counts."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        counts = stack.overview_counts()
        if counts != last:
            last, since = counts, time.monotonic()
        elif time.monotonic() - since >= quiet and sum(c["synced"] for c in counts.values()) > 0:
            return counts
        time.sleep(1)
    raise AssertionError(f"the demo's sync did not settle within {SETTLE_TIMEOUT} s: {last}")


def local_stack_binary() -> Path:
    target = Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target")
    return Path(os.environ.get("LOCAL_STACK_BIN") or target / "debug" / "local-stack")


@pytest.fixture(scope="session")
def stack():
    binary = local_stack_binary()
    if not binary.exists():
        pytest.fail(f"{binary} is missing: run `cargo build --workspace --bins` (make build-local)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    # local-stack starts the functions' binaries from $CARGO_TARGET_DIR/debug.
    env.setdefault("CARGO_TARGET_DIR", str(binary.parent.parent))
    env.setdefault("RUST_LOG", "info")
    log = ARTIFACTS / "local-stack.log"
    process = subprocess.Popen(
        [str(binary), "--schedule-every", "5"],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )
    s = Stack(process=process, log=log)

    def drain():
        # Reads every line for the whole session, so the pipe never fills.
        with open(log, "w", encoding="utf-8") as out:
            for line in process.stdout:
                out.write(line)
                out.flush()
                line = line.rstrip("\n")
                s.lines.append(line)
                parse_summary(s, line)
                if line.startswith("Ready."):
                    s.ready.set()
        s.ready.set()  # it exited: stop waiting

    reader = threading.Thread(target=drain, name="local-stack-stdout", daemon=True)
    reader.start()
    try:
        if not s.ready.wait(READY_TIMEOUT) or process.poll() is not None:
            pytest.fail(
                f"local-stack did not print Ready. within {READY_TIMEOUT} s "
                f"(exit code {process.poll()}):\n{s.tail()}"
            )
        missing = [n for n in ("admin", "operator_key", "connection", "portal", "hubspot", "qbo") if not getattr(s, n)]
        assert not missing, f"local-stack's summary did not say {missing}:\n{s.tail()}"
        wait_settled(s)
        yield s
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)
        reader.join(timeout=10)


def parse_summary(s: Stack, line: str) -> None:
    """Picks what the tests need out of local-stack's summary (tests/local-stack/src/main.rs)."""
    patterns = {
        "admin": r"^function URL\s+admin\s+(http://\S+)",
        "hubspot": r"^HubSpot sandbox\s+(http://\S+)",
        "qbo": r"^QuickBooks sandbox\s+(http://\S+)",
        "operator_key": r"^admin API\s+curl -H 'Authorization: Bearer ([^']+)'",
    }
    for name, pattern in patterns.items():
        if m := re.search(pattern, line):
            value = m.group(1)
            setattr(s, name, value if name in ("admin", "operator_key") else value.rstrip("/"))
    if m := re.search(r"^demo connection (\S+) \(HubSpot portal (\d+), QuickBooks company (\d+)\)", line):
        s.connection, s.portal, s.realm = m.groups()
    if s.admin and not s.admin.endswith("/"):
        s.admin += "/"


# --- something to retry ----------------------------------------------------------------------


@pytest.fixture(scope="session")
def failing(stack: Stack) -> dict:
    """A failing contact: one the demo already has, else one made so.

    The demo as `local-stack` starts it leaves every contact synced or left out: the contact
    settings' HubSpot-to-QuickBooks conditions wait for a HubSpot invoice, and the QuickBooks
    customers' names are all distinct. So, as a person would meet the problem:
    1. the conditions are cleared through the operator API, exactly what `make demo` does
       (`Demo::open_contacts` in tests/local-stack/src/demo.rs);
    2. a HubSpot contact is added through the HubSpot sandbox's public CRM API
       (`POST /crm/v3/objects/contacts`, with a token the sandbox issues for the portal, as
       demo.rs gets its tokens), named like an existing QuickBooks customer (same first and
       last name, no company, another email). The sync finds no customer with that email, makes
       one, and QuickBooks refuses the name (6240): the contact fails with
       `duplicate_display_name`, whose fix is the disambiguation setting the settings test
       turns on.
    Answers the record's row from the API (plus `side` and `id`).
    """
    found = stack.records("contact", status="failing")["records"]
    if not found:
        read = stack.settings("contact")
        opened = dict(read["settings"])
        opened["filters"] = {**opened["filters"], "hubspot_to_qbo": []}
        status, answer = stack.api(
            "PUT",
            f"api/connections/{stack.connection}/settings/contact",
            opened,
            {"If-Match": str(read["version"])},
        )
        assert status == 200, f"clearing the contact conditions: {status} {answer}"

        status, dump = http("GET", f"{stack.qbo}/_sandbox/realms/{stack.realm}/entities/Customer")
        assert status == 200, dump
        twin = next(
            c
            for c in dump["objects"]
            if c.get("Active", True) and c.get("GivenName") and c.get("FamilyName")
            and c.get("DisplayName") == f"{c['GivenName']} {c['FamilyName']}"
        )
        status, token = http("POST", f"{stack.hubspot}/_sandbox/tokens", {"portal_id": int(stack.portal)})
        assert status in (200, 201) and token.get("access_token"), (status, token)
        status, contact = http(
            "POST",
            f"{stack.hubspot}/crm/v3/objects/contacts",
            {"properties": {"firstname": twin["GivenName"], "lastname": twin["FamilyName"],
                            "email": f"{twin['GivenName']}.{twin['FamilyName']}.twin@example.com".lower()}},
            {"Authorization": f"Bearer {token['access_token']}"},
        )
        assert status in (200, 201), contact

        def failing_now():
            rows = stack.records("contact", status="failing", q=contact["id"])["records"]
            return [r for r in rows if r["hubspot_id"] == contact["id"]]

        found = wait_for(f"HubSpot contact {contact['id']} to fail", failing_now, 60)
    row = dict(found[0])
    row["side"] = "hubspot" if row["hubspot_id"] else "qbo"
    row["id"] = row["hubspot_id"] or row["qbo_id"]
    attempts = wait_quiet(stack, "contact", row["side"], row["id"])
    # A failure that waits for a person is tried once, not again on every poll that reads the
    # same version (the poll's overlap re-reads it for two minutes).
    assert attempts == 1, f"tried {attempts} times"
    wait_settled(stack)
    return row


def wait_quiet(stack: Stack, object_: str, side: str, id_: str, timeout: float = 240) -> int:
    """Waits until a failing record is no longer tried each round; answers its attempts.

    The poll reads a record again every round while its last change is inside the poll's
    overlap window (two minutes on HubSpot's side), and each reading tries a failing record
    again (it is briefly pending meanwhile). Once out of it, the record stays as it is until
    something changes it, so what the pages show can be held against the API, and what
    follows a retry is the retry's doing alone.
    """

    def quiet():
        seen = []
        for _ in range(3):
            failure = stack.record(object_, side, id_)["failure"]
            assert failure, f"{side} record {id_} no longer fails"
            seen.append(failure["attempts"])
            time.sleep(6)
        return len(set(seen)) == 1 and seen[0]

    return wait_for(f"{side} record {id_} to stop being tried each round", quiet, timeout, every=0)


# --- the browser -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


class Console:
    """The console errors and uncaught exceptions of a context's pages."""

    def __init__(self):
        self.errors: list[str] = []

    def watch(self, page: Page) -> Page:
        page.on("console", lambda m: m.type == "error" and self.errors.append(f"console: {m.text} ({m.location.get('url')})"))
        page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        return page

    def take(self) -> list[str]:
        errors, self.errors = self.errors, []
        return errors


def new_context(browser, console: Console):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    context.set_default_timeout(20_000)
    # The admin function serves no icon; the browser's own /favicon.ico request would log a 404
    # that is no page's error.
    context.route("**/favicon.ico", lambda route: route.fulfill(status=204, body=""))
    context.on("page", console.watch)
    return context


@pytest.fixture(scope="session")
def console() -> Console:
    return Console()


@dataclass
class Visit:
    page: Page
    landed: str  # where signing in led


@pytest.fixture(scope="session")
def visit(browser, console, stack) -> Visit:
    """One browser context for the whole visit, signed in as the demo portal's user: the
    sandbox's authorize page consents at once, and the callback sets the session cookie and
    sends the person to the connections list."""
    context = new_context(browser, console)
    page = context.new_page()
    ok(page.goto(f"{stack.admin}signin?portal={stack.portal}"), "signing in")
    yield Visit(page=page, landed=page.url)
    context.close()


@pytest.fixture
def page(visit) -> Page:
    return visit.page


@pytest.fixture(autouse=True)
def no_console_errors(request, console):
    console.take()
    yield
    errors = console.take()
    assert not errors, "the page logged errors:\n" + "\n".join(errors)


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def ok(response, what: str):
    assert response is not None and response.ok, f"{what}: HTTP {response.status if response else '?'} {response.url if response else ''}"
    return response


def number(text: str) -> int:
    text = text.strip()
    assert re.fullmatch(r"\d+", text), f"{text!r} is not a count"
    return int(text)


def records_url(stack: Stack, object_: str, **query) -> str:
    query = {k: v for k, v in query.items() if v}
    url = f"{stack.admin}connections/{stack.connection}/records/{object_}"
    return url + ("?" + urllib.parse.urlencode(query) if query else "")


def shown_rows(page: Page) -> dict:
    """The record view's rows by link: their cells as text."""
    rows = {}
    for row in page.locator("#records tr.record").all():
        cells = [c.strip() for c in row.locator("td").all_inner_texts()]
        rows[row.get_attribute("data-link")] = {
            "hubspot_id": cells[0], "qbo_id": cells[1], "match_key": cells[2], "status": cells[3], "why": cells[4],
        }
    return rows


def assert_rows_equal_api(page: Page, stack: Stack, object_: str, **query) -> dict:
    api = stack.records(object_, **query)
    shown = shown_rows(page)
    assert sorted(shown) == sorted(r["link"] for r in api["records"]), (shown.keys(), api)
    assert number(page.locator("#total").inner_text().split()[0]) == int(api["total"])
    statuses = {"synced": "Synced", "failing": "Failing", "excluded": "Left out", "pending": "In progress"}
    for r in api["records"]:
        cells = shown[r["link"]]
        assert cells["hubspot_id"] == (r["hubspot_id"] or ""), (cells, r)
        assert cells["qbo_id"] == (r["qbo_id"] or ""), (cells, r)
        assert cells["match_key"] == (r["match_key"] or ""), (cells, r)
        assert cells["status"] == statuses[r["status"]], (cells, r)
        if r["reason"]:
            assert r["reason"] in cells["why"], (cells, r)
    return api


# --- the visit -------------------------------------------------------------------------------


def test_signed_out_shows_the_sign_in_page(browser, console, stack):
    context = new_context(browser, console)
    try:
        page = context.new_page()
        ok(page.goto(stack.admin), "the admin page")
        signin = page.locator("#signin")
        assert signin.is_visible()
        assert signin.get_attribute("href") == stack.admin + "signin"
        assert page.locator("#connections").count() == 0
        # Not signed in, the pages of a connection show the sign-in page too, not its data.
        ok(page.goto(f"{stack.admin}connections/{stack.connection}"), "the object view, signed out")
        assert page.locator("#signin").is_visible() and page.locator("#objects").count() == 0
        shot(page, "01-signin")
    finally:
        context.close()


def test_sign_in_lists_the_demo_connection_and_opens_it(visit, stack):
    page = visit.page
    # Signing in (the `visit` fixture opened signin?portal=P) ended on the connections list.
    assert visit.landed == stack.admin, visit.landed
    ok(page.goto(stack.admin), "the connections list")
    row = page.locator("#connections tr", has=page.locator("a.open-connection"))
    rows = {r.locator("td").nth(1).inner_text().strip(): r for r in row.all()}
    assert stack.portal in rows, list(rows)
    demo = rows[stack.portal]
    assert "Connected" in demo.locator(".connection-status").inner_text()
    listed = {c["portal_id"]: c for c in stack.api_ok("api/connections")["connections"]}
    assert demo.locator("td").first.inner_text().strip() == (listed[stack.portal]["company_name"] or stack.realm)
    assert page.locator("form[action$='/signout']").is_visible()  # signed in
    shot(page, "02-connections")
    with page.expect_navigation():
        demo.locator("a.open-connection").click()
    assert page.url == f"{stack.admin}connections/{stack.connection}", page.url
    assert page.locator("#objects").is_visible(), page.content()[:2000]


def test_object_view_counts_equal_the_api(page, stack, failing):
    ok(page.goto(f"{stack.admin}connections/{stack.connection}"), "the object view")
    api = stack.overview_counts()
    for object_ in OBJECTS:
        row = page.locator(f"#objects tr[data-object={object_}]")
        assert row.count() == 1, object_
        for status in STATUSES:
            shown = number(row.locator(f".count[data-status={status}]").inner_text())
            assert shown == api[object_][status], (object_, status, shown, api[object_])
        # The chart: one synced and one failing bar per hour of the last 24.
        assert row.locator("svg.chart rect.synced").count() == 24
        assert row.locator("svg.chart rect.failing").count() == 24
    assert api["contact"]["failing"] >= 1
    shot(page, "03-object-view")


def test_record_view_filters_equal_the_api(page, stack, failing):
    ok(page.goto(f"{stack.admin}connections/{stack.connection}"), "the object view")
    with page.expect_navigation():
        page.locator("#objects tr[data-object=contact] a.records-link").click()
    assert_rows_equal_api(page, stack, "contact")  # unfiltered, first page

    page.select_option("#status", "failing")
    with page.expect_navigation():
        page.click("#apply-filters")
    assert "status=failing" in page.url
    api = assert_rows_equal_api(page, stack, "contact", status="failing")
    assert failing["link"] in {r["link"] for r in api["records"]}
    failing_row = page.locator(f"#records tr.record[data-link='{failing['link']}']")
    assert failing_row.locator("button.retry").count() == 1
    assert page.locator("#records tr.record:not(:has(button.retry))").count() == 0  # only failing rows

    # And by text: part of the record's email.
    q = (failing["match_key"] or failing["id"])[:12]
    page.fill("#q", q)
    with page.expect_navigation():
        page.click("#apply-filters")
    assert page.locator("#status").input_value() == "failing"
    assert page.locator("#q").input_value() == q
    api = assert_rows_equal_api(page, stack, "contact", status="failing", q=q)
    assert failing["link"] in {r["link"] for r in api["records"]}
    shot(page, "04-records-failing")


def test_record_activity_explains_the_failure(page, stack, failing):
    ok(page.goto(records_url(stack, "contact", status="failing")), "the record view")
    with page.expect_navigation():
        page.locator(f"#records tr.record[data-link='{failing['link']}'] a.activity-link").click()
    assert page.url.endswith(f"/records/contact/{failing['side']}/{failing['id']}"), page.url
    api = stack.record("contact", failing["side"], failing["id"])
    assert page.locator("#record-status").inner_text().strip() == "Failing"
    rows = page.locator("#activity tr.activity")
    assert rows.count() >= 1
    assert rows.count() == len(api["activity"]), (rows.count(), len(api["activity"]))
    assert "failed" in rows.first.inner_text()
    problem = page.locator("#failure").inner_text()
    assert api["failure"]["message"] in problem
    assert api["explanation"], api
    assert api["explanation"]["title"] in problem
    assert api["explanation"]["fix"] in problem
    assert re.search(r"Tried \d+ times?", problem), problem
    assert page.locator("#retry-record").is_visible()
    shot(page, "05-record-activity")


def test_record_activity_names_the_side_a_change_came_from(page, stack, failing):
    ok(page.goto(f"{stack.admin}connections/{stack.connection}/records/contact/{failing['side']}/{failing['id']}"), "the record page")
    api = stack.record("contact", failing["side"], failing["id"])
    words = {"hubspot": "HubSpot", "qbo": "QuickBooks"}
    expected = [words[a["from"]] for a in reversed(api["activity"])]
    shown = [c.strip() for c in page.locator("#activity tr.activity td:nth-child(2)").all_inner_texts()]
    n = min(len(shown), len(expected))
    assert shown[-n:] == expected[-n:]


def download_csv(page: Page) -> list[dict]:
    with page.expect_download() as info:
        page.click("#export")
    download = info.value
    assert download.failure() is None, download.failure()
    assert download.suggested_filename.endswith(".csv"), download.suggested_filename
    with open(download.path(), newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames[:3] == ["object", "status", "hubspot_id"], reader.fieldnames
        return list(reader)


def assert_csv_equals_api(rows: list[dict], api: dict) -> None:
    assert int(api["total"]) == len(api["records"]), "more than one page: raise the limit"
    assert sorted(r["link"] for r in rows) == sorted(r["link"] for r in api["records"])
    by_link = {r["link"]: r for r in rows}
    for r in api["records"]:
        got = by_link[r["link"]]
        assert got["status"] == r["status"], (got, r)
        assert got["hubspot_id"] == (r["hubspot_id"] or ""), (got, r)
        assert got["qbo_id"] == (r["qbo_id"] or ""), (got, r)
        assert got["category"] == (r["category"] or ""), (got, r)


def test_csv_export_equals_the_api(page, stack, failing):
    q = (failing["match_key"] or failing["id"])[:12]
    ok(page.goto(records_url(stack, "contact", status="failing", q=q)), "the record view, filtered")
    rows = download_csv(page)
    assert rows, "the filtered export is empty"
    assert_csv_equals_api(rows, stack.records("contact", status="failing", q=q, limit=500))

    ok(page.goto(records_url(stack, "contact")), "the record view")
    rows = download_csv(page)
    assert_csv_equals_api(rows, stack.records("contact", limit=500))
    assert {r["status"] for r in rows} >= {"synced", "failing"}


def test_retry_takes_effect(page, stack, failing):
    side, id_ = failing["side"], failing["id"]
    before = stack.record("contact", side, id_)
    attempts = before["failure"]["attempts"]
    assert before["record"]["status"] == "failing"
    assert before["failure"]["next_retry_at"] is None, before["failure"]  # it waits for a person

    ok(page.goto(f"{stack.admin}connections/{stack.connection}/records/contact/{side}/{id_}"), "the record page")
    clicked = int(time.time())
    with page.expect_navigation():
        page.click("#retry-record")
    notice = page.locator("#notice")
    assert notice.is_visible()
    assert "tried again" in notice.inner_text(), notice.inner_text()
    assert page.url.split("?")[0].endswith(f"/records/contact/{side}/{id_}"), page.url
    shot(page, "06-record-retried")

    after = stack.record("contact", side, id_)
    due = after["failure"] and after["failure"]["next_retry_at"]
    assert (due is not None and clicked - 1 <= int(due) <= time.time() + 1) or (
        after["failure"] is None or after["failure"]["attempts"] > attempts
    ), after["failure"]
    # And the retry sweep tries it within a round or two.
    wait_for(
        "the retry to run",
        lambda: (r := stack.record("contact", side, id_))["failure"] is None or r["failure"]["attempts"] > attempts,
        45,
    )


def test_settings_preview_and_save(page, stack, failing):
    before = stack.settings("contact")
    assert before["settings"]["disambiguate_display_names"] is False
    ok(page.goto(f"{stack.admin}connections/{stack.connection}/settings/contact"), "the contact settings")
    form = page.locator("#settings-form")
    assert form.is_visible()
    assert page.locator("#enabled").is_checked() == before["settings"]["enabled"]
    assert page.locator("#direction").input_value() == before["settings"]["direction"]
    assert page.locator("#conflict").input_value() == before["settings"]["conflict"]
    assert page.locator("#disambiguate").is_checked() is False

    page.check("#disambiguate")
    with page.expect_navigation():
        page.click("#preview")
    result = page.locator("#preview-result")
    assert result.is_visible()
    counts = {
        row.get_attribute("data-decision"): number(row.locator("td.num").inner_text())
        for row in result.locator("tr.preview-count").all()
    }
    assert set(counts) == {"create", "link", "update", "exclude", "skip", "fail"}, counts
    read = re.search(r"first (\d+) HubSpot and (\d+) QuickBooks records", result.inner_text())
    assert read, result.inner_text()
    assert sum(counts.values()) == int(read[1]) + int(read[2]) > 0, (counts, read.groups())
    # The preview shows the form as changed, and saved nothing.
    assert page.locator("#disambiguate").is_checked()
    assert stack.settings("contact") == before
    shot(page, "07-settings-preview")

    with page.expect_navigation():
        page.click("#save")
    assert page.locator("#notice").inner_text().strip() == "Saved."
    assert page.locator("#disambiguate").is_checked()
    shot(page, "08-settings-saved")
    after = stack.settings("contact")
    assert int(after["version"]) > int(before["version"])
    # Only what was changed changed: the form carries every other setting through.
    assert after["settings"] == {**before["settings"], "disambiguate_display_names": True}

    if failing["category"] == "duplicate_display_name":
        # A changed display-name rule tries the taken names again: now with a free one.
        synced = wait_for(
            "the duplicate-name contact to sync with disambiguation on",
            lambda: (r := stack.record("contact", failing["side"], failing["id"]))["record"]["status"] == "synced" and r,
            60,
        )
        assert synced["record"]["qbo_id"], synced


def test_removing_settings_asks_first(page, stack):
    before = stack.settings("contact")
    ok(page.goto(f"{stack.admin}connections/{stack.connection}/settings/contact"), "the contact settings")
    asked = []

    def dismiss(dialog):
        asked.append((dialog.type, dialog.message))
        dialog.dismiss()

    page.once("dialog", dismiss)
    page.click("#delete-settings")
    page.wait_for_timeout(500)
    assert asked and asked[0][0] == "confirm" and "Remove" in asked[0][1], asked
    assert page.url == f"{stack.admin}connections/{stack.connection}/settings/contact"
    assert page.locator("#settings-form").is_visible()
    assert stack.settings("contact") == before  # declined: nothing removed
