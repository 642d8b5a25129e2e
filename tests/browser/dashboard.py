#!/usr/bin/env python3
"""The web dashboard in a real headless Chromium (Debian's, driven by Playwright for
Python), against a running gateway that tests/dashboard.rs starts with mock upstreams.

Each test_* function is one line of issue 13's "Done when" list. They run in file order
(later ones use what earlier ones made) and share one signed-in admin browser context.
Every page visited is saved as a screenshot in $TOLLGATE_SCREENSHOTS.

Environment (set by tests/dashboard.rs):
  TOLLGATE_ADMIN_URL, TOLLGATE_PROXY_URL   the two listeners, http://127.0.0.1:PORT
  TOLLGATE_ADMIN_USER/_PASSWORD            an admin who signs in
  TOLLGATE_MEMBER_USER/_PASSWORD           a member who signs in
  TOLLGATE_MEMBER_KEY, TOLLGATE_OTHER_KEY  gateway keys of that member and of another user
  TOLLGATE_API_KEY                         an admin's gateway key, for GET /admin/usage
  TOLLGATE_SCREENSHOTS                     where screenshots go
  CHROMIUM                                 the browser binary (default /usr/bin/chromium)

Exit status 0 when every test passed; the last line is "N passed, N failed".
"""

import json
import os
import re
import sys
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:
    print("Playwright for Python is missing: run .ci/setup (pip install playwright)", file=sys.stderr)
    sys.exit(2)

ADMIN = os.environ["TOLLGATE_ADMIN_URL"]
PROXY = os.environ["TOLLGATE_PROXY_URL"]
SHOTS = os.environ["TOLLGATE_SCREENSHOTS"]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# The flags this machine's Chromium needs (no sandbox as root, no network of its own).
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
XSS = ['<script>alert(1)</script>', '"><img src=x onerror=alert(1)>']
ADMIN_PAGES = ["/ui/", "/ui/usage", "/ui/requests", "/ui/keys", "/ui/users", "/ui/pricing",
               "/ui/provider-keys", "/ui/upstreams", "/ui/audit", "/ui/system"]
MEMBER_PAGES = ["/ui/", "/ui/usage", "/ui/requests", "/ui/keys", "/ui/provider-keys"]
ADMIN_ONLY = ["/ui/users", "/ui/pricing", "/ui/upstreams", "/ui/audit", "/ui/system"]

# What the tests hand each other.
state = {}


def shot(page, name):
    page.screenshot(path=os.path.join(SHOTS, f"{name}.png"), full_page=True)


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


OPENER = urllib.request.build_opener(NoRedirect)


def http(method, url, body=None, headers=None):
    """(status, text, headers with lower-case names) of a plain request outside the
    browser; redirects are not followed."""
    data = body.encode() if isinstance(body, str) else body
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with OPENER.open(req, timeout=20) as r:
            return r.status, r.read().decode(), {k.lower(): v for k, v in r.headers.items()}
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), {k.lower(): v for k, v in e.headers.items()}


def chat(key, model="gpt-4o-mini"):
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}]})
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    return http("POST", f"{PROXY}/v1/chat/completions", body, headers)


def admin_api(path):
    status, text, _ = http("GET", ADMIN + path, headers={"authorization": f"Bearer {os.environ['TOLLGATE_API_KEY']}"})
    assert status == 200, (path, status, text)
    return json.loads(text)


def eventually(what, check, limit=15.0):
    """Calls check() until it returns something truthy (bounded); returns that."""
    deadline = time.monotonic() + limit
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {limit} s (last: {last!r})")


def sign_in(page, user, password):
    page.goto(f"{ADMIN}/ui/login")
    page.get_by_label("Username", exact=True).fill(user)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()


def nanos(text):
    """A cost cell ("0.000123" or "$0.000123") in nano-dollars."""
    whole, _, frac = text.strip().lstrip("$").partition(".")
    return int(whole) * 10**9 + int((frac + "000000000")[:9])


def number(text):
    return int(text.strip().replace(",", ""))


def cells(row):
    return [c.inner_text() for c in row.locator("td").all()]


def csrf_of(page):
    return page.locator("input[name=csrf_token]").first.get_attribute("value")


# ---------------------------------------------------------------------------------------


def test_sign_in_and_sign_out(browser):
    ctx = browser.new_context()
    page = ctx.new_page()
    page.goto(f"{ADMIN}/ui/")
    expect(page).to_have_url(f"{ADMIN}/ui/login")
    shot(page, "login")
    sign_in(page, os.environ["TOLLGATE_ADMIN_USER"], os.environ["TOLLGATE_ADMIN_PASSWORD"])
    expect(page).to_have_url(f"{ADMIN}/ui/")
    expect(page.get_by_test_id("whoami")).to_have_text(f"{os.environ['TOLLGATE_ADMIN_USER']} (admin)")
    cookie = next(c for c in ctx.cookies() if c["name"] == "tollgate_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/", cookie
    # The cookie is the session token of POST /admin/login: it works as a bearer token.
    status, _, _ = http("GET", f"{ADMIN}/admin/users", headers={"authorization": f"Bearer {cookie['value']}"})
    assert status == 200, status
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(f"{ADMIN}/ui/login")
    page.goto(f"{ADMIN}/ui/keys")
    expect(page).to_have_url(f"{ADMIN}/ui/login")
    # The session ended on the server, not only in this browser.
    status, _, _ = http("GET", f"{ADMIN}/ui/keys", headers={"cookie": f"tollgate_session={cookie['value']}"})
    assert status == 303, status
    status, _, _ = http("GET", f"{ADMIN}/admin/users", headers={"authorization": f"Bearer {cookie['value']}"})
    assert status == 401, status
    ctx.close()


def test_wrong_password(browser):
    ctx = browser.new_context()
    page = ctx.new_page()
    messages = []
    for user, password in [(os.environ["TOLLGATE_ADMIN_USER"], "not-the-password"), ("nobody-here", "whatever-1")]:
        sign_in(page, user, password)
        expect(page).to_have_url(f"{ADMIN}/ui/login")
        alert = page.get_by_role("alert")
        expect(alert).to_be_visible()
        messages.append(alert.inner_text())
        assert not any(c["name"] == "tollgate_session" for c in ctx.cookies())
    shot(page, "login-failed")
    # One message, whichever part was wrong.
    assert messages[0] == messages[1] == "Invalid username or password.", messages
    ctx.close()


def test_create_user_and_key_then_requests_show_on_the_log_and_usage(admin):
    page = admin
    page.goto(f"{ADMIN}/ui/users")
    page.get_by_label("Username", exact=True).fill("dana")
    page.get_by_label("Role", exact=True).select_option("member")
    page.get_by_label("Password", exact=True).fill("dana-password-1")
    page.get_by_role("button", name="Create user").click()
    expect(page.locator('[data-testid="user-row"][data-user="dana"]')).to_have_count(1)
    shot(page, "users")
    page.goto(f"{ADMIN}/ui/keys")
    page.get_by_label("User", exact=True).fill("dana")
    page.get_by_label("Name", exact=True).fill("ci-key")
    page.get_by_label("Models", exact=True).fill("gpt-*")
    page.get_by_role("button", name="Create key").click()
    key = page.get_by_test_id("new-key").inner_text().strip()
    assert re.fullmatch(r"tg_[a-z0-9]+_[A-Za-z0-9]+", key), key
    key_id = key.split("_")[1]
    shot(page, "keys-new-key")
    # Shown once: the list does not show it again.
    page.goto(f"{ADMIN}/ui/keys")
    assert key not in page.content()
    expect(page.locator(f'[data-testid="key-row"][data-key-id="{key_id}"]')).to_have_count(1)
    for _ in range(3):
        status, text, _ = chat(key)
        assert status == 200, (status, text)
    state.update(key=key, key_id=key_id)

    # The request log lists them (newest first), refreshed by its own polling.
    page.goto(f"{ADMIN}/ui/requests?key={key_id}")
    rows = page.get_by_test_id("request-row")
    expect(rows).to_have_count(3, timeout=15000)
    for row in rows.all():
        c = cells(row)
        assert key_id in c[1] and "dana" == c[2] and c[6] == "200", c
    chat(key)
    expect(rows).to_have_count(4, timeout=15000)  # appears without a reload
    shot(page, "requests")

    # The usage page's figures equal GET /admin/usage for the range it names.
    for by, group in [("key", key_id), ("user", "dana")]:
        page.goto(f"{ADMIN}/ui/usage?by={by}")
        api_url = page.locator("p.muted code").first.inner_text()
        assert api_url.startswith(f"/admin/usage?by={by}&since="), api_url
        doc = admin_api(api_url)
        want = next(r for r in doc["rows"] if r["group"] == group)
        row = page.locator(f'[data-testid="usage-row"][data-group="{group}"]')
        expect(row).to_have_count(1)
        c = cells(row)
        figures = [number(x) for x in c[1:8]]
        assert figures == [want["requests"], want["input_tokens"], want["output_tokens"],
                           want["cache_read_tokens"], want["cache_write_tokens"],
                           want["reasoning_tokens"], want["estimated_requests"]], (c, want)
        assert want["requests"] == 4, want
        assert nanos(c[8]) == round(want["cost_usd"] * 1e9) and nanos(c[8]) > 0, (c, want)
        # Every group the API lists, the page lists, with the same cost.
        page_groups = {r.get_attribute("data-group"): nanos(cells(r)[8]) for r in page.get_by_test_id("usage-row").all()}
        assert page_groups == {r["group"]: round(r["cost_usd"] * 1e9) for r in doc["rows"]}, (page_groups, doc)
    shot(page, "usage")
    csv = page.request.get(f"{ADMIN}/ui/usage?by=user&format=csv")
    assert csv.status == 200 and csv.headers["content-type"].startswith("text/csv"), csv.headers
    assert any(line.startswith("dana,4,") for line in csv.text().splitlines()), csv.text()


def test_revoke_in_the_ui_then_the_proxy_answers_401(admin):
    page = admin
    key, key_id = state["key"], state["key_id"]
    page.goto(f"{ADMIN}/ui/keys?user=dana")
    row = page.locator(f'[data-testid="key-row"][data-key-id="{key_id}"]')
    dialogs = []

    def accept(dialog):
        dialogs.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    row.get_by_role("button", name="Revoke").click()
    expect(page.get_by_role("status")).to_contain_text("revoked")
    assert dialogs and key_id in dialogs[0], dialogs
    status, text, _ = chat(key)
    assert status == 401, (status, text)
    page.goto(f"{ADMIN}/ui/keys?user=dana&revoked=1")
    expect(page.locator(f'[data-testid="key-row"][data-key-id="{key_id}"]')).to_contain_text("revoked")


def test_a_member_sees_only_their_own_data_and_gets_403_on_admin_pages(browser):
    ctx = browser.new_context()
    page = ctx.new_page()
    member = os.environ["TOLLGATE_MEMBER_USER"]
    sign_in(page, member, os.environ["TOLLGATE_MEMBER_PASSWORD"])
    expect(page.get_by_test_id("whoami")).to_have_text(f"{member} (member)")
    # The admin pages are not offered, and refused when asked for.
    nav = page.locator("header nav").inner_text()
    assert "Users" not in nav and "Audit" not in nav and "Keys" in nav, nav
    for path in ADMIN_ONLY:
        response = page.goto(ADMIN + path)
        assert response.status == 403, (path, response.status)
    shot(page, "member-forbidden")
    own_key_id = os.environ["TOLLGATE_MEMBER_KEY"].split("_")[1]
    other_key_id = os.environ["TOLLGATE_OTHER_KEY"].split("_")[1]
    page.goto(f"{ADMIN}/ui/keys")
    rows = page.get_by_test_id("key-row")
    assert rows.count() >= 1
    for row in rows.all():
        assert cells(row)[1] == member, cells(row)
    assert other_key_id not in page.content()
    assert page.get_by_label("User", exact=True).count() == 0
    shot(page, "member-keys")
    page.goto(f"{ADMIN}/ui/requests")
    rows = page.get_by_test_id("request-row")
    expect(rows.first).to_be_visible()
    for row in rows.all():
        assert cells(row)[2] == member, cells(row)
    # Asking for another user's requests shows nothing of theirs.
    page.goto(f"{ADMIN}/ui/requests?user=dana&key={other_key_id}")
    expect(page.get_by_test_id("request-row")).to_have_count(0)
    page.goto(f"{ADMIN}/ui/usage?by=key")
    groups = [r.get_attribute("data-group") for r in page.get_by_test_id("usage-row").all()]
    assert groups == [own_key_id], groups
    shot(page, "member-usage")
    page.goto(f"{ADMIN}/ui/")
    shot(page, "member-overview")
    page.goto(f"{ADMIN}/ui/provider-keys")
    shot(page, "member-provider-keys")
    # Revoking another user's key is refused, and the key still works.
    r = page.request.post(f"{ADMIN}/ui/keys/{other_key_id}/revoke", form={"csrf_token": csrf_of(page)})
    assert r.status == 403, r.status
    status, text, _ = chat(os.environ["TOLLGATE_OTHER_KEY"])
    assert status == 200, (status, text)
    # Creating a key makes it the member's own, whatever the form says.
    r = page.request.post(f"{ADMIN}/ui/keys", form={"csrf_token": csrf_of(page), "user": "dana", "name": "mine"})
    assert r.status == 200, r.status
    page.goto(f"{ADMIN}/ui/keys")
    expect(page.locator('[data-testid="key-row"]', has_text="mine")).to_contain_text(member)
    state["member_context"] = ctx


def test_a_form_post_without_the_csrf_token_or_from_another_origin_is_refused(admin, browser):
    page = admin
    victim = os.environ["TOLLGATE_OTHER_KEY"]
    victim_id = victim.split("_")[1]
    page.goto(f"{ADMIN}/ui/keys")
    token = csrf_of(page)
    revoke = f"{ADMIN}/ui/keys/{victim_id}/revoke"
    # The browser's own cookie goes with each of these: only the checks stop them.
    r = page.request.post(revoke, form={})
    assert r.status == 403, r.status
    # A forged token: the real one with its first character changed (to another one,
    # since a base64 token starts with "x" one time in 64).
    forged = ("y" if token[0] == "x" else "x") + token[1:]
    assert forged != token
    r = page.request.post(revoke, form={"csrf_token": forged})
    assert r.status == 403, r.status
    r = page.request.post(revoke, form={"csrf_token": token}, headers={"origin": "http://evil.example"})
    assert r.status == 403, r.status
    r = page.request.post(f"{ADMIN}/ui/users", form={"csrf_token": token, "username": "mallory", "role": "admin"},
                          headers={"origin": "null"})
    assert r.status == 403, r.status
    # Another session's token is not this session's.
    other = browser.new_context()
    other_page = other.new_page()
    sign_in(other_page, os.environ["TOLLGATE_ADMIN_USER"], os.environ["TOLLGATE_ADMIN_PASSWORD"])
    other_page.goto(f"{ADMIN}/ui/keys")
    r = page.request.post(revoke, form={"csrf_token": csrf_of(other_page)})
    assert r.status == 403, r.status
    other.close()
    # A real cross-site form: a page elsewhere posting to the dashboard. The
    # SameSite=Strict cookie stays home, and the post changes nothing either way.
    evil = page.context.new_page()
    evil.set_content(f'<form method="post" action="{revoke}"><input name="csrf_token" value="{token}"></form>')
    with evil.expect_navigation():
        evil.evaluate("document.forms[0].submit()")
    assert "Sign in" in evil.content() or "Not allowed" in evil.content() or "Signed out" in evil.content()
    evil.close()
    # Nothing changed: the key still works, no user was made.
    status, text, _ = chat(victim)
    assert status == 200, (status, text)
    assert "mallory" not in [u["username"] for u in admin_api("/admin/users")]
    page.goto(f"{ADMIN}/ui/keys")
    expect(page.locator(f'[data-testid="key-row"][data-key-id="{victim_id}"]')).not_to_contain_text("revoked")
    # With the token and from our own page it goes through (the checks are not
    # refusing everything): a harmless post, a key for dana.
    r = page.request.post(f"{ADMIN}/ui/keys", form={"csrf_token": token, "user": "dana", "name": "by-token"})
    assert r.status == 200 and "new-key" in r.text(), r.status
    # Bearer-authenticated calls need no token.
    status, _, _ = http("POST", f"{ADMIN}/ui/keys", "user=dana&name=by-bearer",
                        {"authorization": f"Bearer {os.environ['TOLLGATE_API_KEY']}",
                         "content-type": "application/x-www-form-urlencoded"})
    assert status == 200, status


def test_hostile_names_and_labels_render_as_text(admin):
    page = admin
    dialogs = []

    def record(dialog):
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", record)
    for label in XSS:
        page.goto(f"{ADMIN}/ui/keys")
        page.get_by_label("User", exact=True).fill("dana")
        page.get_by_label("Name", exact=True).fill(label)
        page.get_by_role("button", name="Create key").click()
        key = page.get_by_test_id("new-key").inner_text().strip()
        # A client-chosen model name goes through the proxy into the log and usage.
        status, text, _ = chat(key, model=label)
        assert status == 200, (status, text)
        # And a user name: refused, with the name in the message.
        page.goto(f"{ADMIN}/ui/users")
        page.get_by_label("Username", exact=True).fill(label)
        page.get_by_role("button", name="Create user").click()
        expect(page.get_by_role("alert")).to_contain_text(label)
        shot(page, "xss-users")
    eventually("the hostile requests to be stored",
               lambda: sum(r["requests"] for r in admin_api("/admin/usage?by=model")["rows"] if r["group"] in XSS) == 2)
    for path, name in [("/ui/keys", "xss-keys"), ("/ui/requests", "xss-requests"),
                       ("/ui/usage?by=model", "xss-usage"), ("/ui/pricing", "xss-pricing"), ("/ui/", "xss-overview")]:
        page.goto(ADMIN + path)
        text = page.locator("main").inner_text()
        for label in XSS:
            assert label in text, (path, label)
        assert page.locator("main img").count() == 0, path
        assert page.locator("main script").count() == 0, path
        shot(page, name)
    page.goto(f"{ADMIN}/ui/usage?by=model")
    for label in XSS:
        expect(page.locator("[data-testid=usage-row]").filter(has_text=label)).to_have_count(1)
    page.remove_listener("dialog", record)
    assert dialogs == [], dialogs


def test_the_csp_header_is_on_every_page(admin):
    page = admin
    for path in ADMIN_PAGES + ["/ui/usage?format=csv", "/ui/requests?fragment=rows", "/ui/login"]:
        response = page.goto(ADMIN + path) if "format=csv" not in path else page.request.get(ADMIN + path)
        headers = response.headers if hasattr(response, "headers") else {}
        csp = headers.get("content-security-policy", "")
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp, (path, csp)
        assert headers.get("x-content-type-options") == "nosniff", (path, headers)
        assert headers.get("referrer-policy") == "same-origin", (path, headers)
        assert headers.get("cache-control") == "no-store", (path, headers)
        # No page refers to anything outside the listener.
        if "format=csv" not in path:
            html = page.content()
            assert not re.search(r'(src|href)="(https?:)?//', html), path
            name = "overview" if path == "/ui/" else path.strip("/").replace("ui/", "").replace("?", "-").replace("=", "-")
            shot(page, name)
    # Errors and redirects carry them too.
    for path in ["/ui/no-such-page", "/"]:
        status, _, headers = http("GET", ADMIN + path)
        assert "frame-ancestors 'none'" in headers.get("content-security-policy", ""), (path, headers)
    member = state.get("member_context")
    if member:
        mpage = member.new_page()
        for path in MEMBER_PAGES + ADMIN_ONLY:
            response = mpage.goto(ADMIN + path)
            assert "default-src 'self'" in response.headers.get("content-security-policy", ""), path


def test_the_system_page_downloads_a_backup(admin):
    page = admin
    page.goto(f"{ADMIN}/ui/system")
    shot(page, "system")
    with page.expect_download() as info:
        page.get_by_role("link", name="Download a backup").click()
    download = info.value
    assert re.fullmatch(r"tollgate-.*\.db", download.suggested_filename), download.suggested_filename
    with open(download.path(), "rb") as f:
        data = f.read()
    # A real SQLite database holding what the gateway stored (the users made above).
    assert data.startswith(b"SQLite format 3\x00"), data[:16]
    assert b"dana" in data
    audit = [e for e in admin_api("/admin/audit") if e["action"] == "backup"]
    assert audit and audit[0]["actor"] == os.environ["TOLLGATE_ADMIN_USER"], audit
    # Members get no backup.
    member = state["member_context"].new_page()
    response = member.goto(f"{ADMIN}/ui/system/backup")
    assert response.status == 403, response.status
    member.close()


def test_change_a_price_and_the_next_request_costs_it(admin):
    page = admin
    key = os.environ["TOLLGATE_MEMBER_KEY"]
    page.goto(f"{ADMIN}/ui/pricing")
    page.get_by_label("Pattern", exact=True).fill("gpt-4o-mini*")
    # USD per million tokens: 1 and 2 are 1,000 and 2,000 nano-dollars a token.
    page.get_by_label("Input", exact=True).fill("1")
    page.get_by_label("Output", exact=True).fill("2")
    page.get_by_role("button", name="Save price").click()
    expect(page.get_by_role("status")).to_contain_text("price is set")
    expect(page.locator('[data-testid="price-row"][data-pattern="gpt-4o-mini*"]')).to_contain_text("store")
    shot(page, "pricing-override")
    before = {r["group"]: r for r in admin_api("/admin/usage?by=model")["rows"]}.get("gpt-4o-mini", {"requests": 0, "cost_usd": 0})
    status, text, _ = chat(key)
    assert status == 200, text
    usage = json.loads(text)["usage"]
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
    want = (usage["prompt_tokens"] - cached) * 1000 + cached * 1000 + usage["completion_tokens"] * 2000
    after = eventually("the request to be stored", lambda: next(
        (r for r in admin_api("/admin/usage?by=model")["rows"] if r["group"] == "gpt-4o-mini" and r["requests"] == before["requests"] + 1), None))
    assert round((after["cost_usd"] - before["cost_usd"]) * 1e9) == want, (before, after, want)


def test_an_unpriced_model_gets_a_price_in_one_click(admin):
    page = admin
    # The hostile model names above have no price: listed, with a link that fills the form.
    page.goto(f"{ADMIN}/ui/pricing")
    row = page.get_by_test_id("unpriced-row").filter(has_text=XSS[0])
    expect(row).to_have_count(1)
    row.get_by_role("link", name="Set price").click()
    expect(page.get_by_label("Pattern", exact=True)).to_have_value(XSS[0])
    page.get_by_label("Input", exact=True).fill("3")
    page.get_by_label("Output", exact=True).fill("4")
    page.get_by_role("button", name="Save price").click()
    expect(page.locator("[data-testid=price-row]").filter(has_text=XSS[0])).to_contain_text("store")
    expect(page.get_by_test_id("unpriced-row").filter(has_text=XSS[0])).to_have_count(0)
    prices = {p["pattern"]: p for p in admin_api("/admin/prices")}
    assert prices[XSS[0]]["source"] == "store", prices
    # Deleting the override puts the model back on the list.
    page.once("dialog", lambda d: d.accept())
    page.locator("[data-testid=price-row]").filter(has_text=XSS[0]).get_by_role("button", name="Delete").click()
    expect(page.get_by_role("status")).to_contain_text("deleted")
    expect(page.get_by_test_id("unpriced-row").filter(has_text=XSS[0])).to_have_count(1)
    assert XSS[0] not in {p["pattern"] for p in admin_api("/admin/prices")}


def test_edit_a_key_and_a_user_in_place(admin):
    page = admin
    page.goto(f"{ADMIN}/ui/keys")
    page.get_by_label("User", exact=True).fill("dana")
    page.get_by_label("Name", exact=True).fill("to-edit")
    page.get_by_role("button", name="Create key").click()
    key = page.get_by_test_id("new-key").inner_text().strip()
    key_id = key.split("_")[1]
    status, text, _ = chat(key)
    assert status == 200, (status, text)
    page.goto(f"{ADMIN}/ui/keys")
    page.locator(f'[data-testid="key-row"][data-key-id="{key_id}"]').get_by_role("link", name="Edit").click()
    expect(page).to_have_url(f"{ADMIN}/ui/keys/{key_id}")
    page.get_by_label("Name", exact=True).fill("edited")
    page.get_by_label("Models", exact=True).fill("claude-*")
    page.get_by_label("RPM", exact=True).fill("7")
    page.get_by_label("Budget (USD)", exact=True).fill("2.5")
    shot(page, "key-edit")
    page.get_by_role("button", name="Save key").click()
    expect(page.get_by_role("status")).to_contain_text("updated")
    row = page.locator(f'[data-testid="key-row"][data-key-id="{key_id}"]')
    expect(row).to_contain_text("edited")
    expect(row).to_contain_text("7 rpm")
    listed = next(k for k in admin_api("/admin/keys?user=dana") if k["id"] == key_id)
    assert (listed["name"], listed["models"], listed["rpm"]) == ("edited", ["claude-*"], 7), listed
    assert listed["budget_usd"].startswith("2.5"), listed
    # In force from the next request: gpt-4o-mini is outside the key's scope now.
    status, text, _ = chat(key)
    assert status == 403, (status, text)
    # A bad value is refused with the form again and changes nothing.
    page.goto(f"{ADMIN}/ui/keys/{key_id}")
    page.get_by_label("RPM", exact=True).fill("lots")
    page.get_by_role("button", name="Save key").click()
    expect(page.get_by_role("alert")).to_be_visible()
    listed = next(k for k in admin_api("/admin/keys?user=dana") if k["id"] == key_id)
    assert listed["rpm"] == 7, listed
    # A user: role and budget; the audit log has both edits.
    page.goto(f"{ADMIN}/ui/users")
    page.locator('[data-testid="user-row"][data-user="dana"]').get_by_role("link", name="Edit").click()
    page.get_by_label("Role", exact=True).select_option("admin")
    page.get_by_label("Budget (USD)", exact=True).fill("40")
    shot(page, "user-edit")
    page.get_by_role("button", name="Save user").click()
    expect(page.get_by_role("status")).to_contain_text("updated")
    dana = next(u for u in admin_api("/admin/users") if u["username"] == "dana")
    assert dana["role"] == "admin" and dana["budget_usd"].startswith("40"), dana
    actions = [e["action"] for e in admin_api("/admin/audit")]
    assert "key.update" in actions and "user.update" in actions, actions
    # Members edit only their own keys.
    member = state["member_context"].new_page()
    response = member.goto(f"{ADMIN}/ui/keys/{key_id}")
    assert response.status == 403, response.status
    response = member.goto(f"{ADMIN}/ui/users/{dana['id']}")
    assert response.status == 403, response.status
    member.close()


TESTS = [
    test_sign_in_and_sign_out,
    test_wrong_password,
    test_create_user_and_key_then_requests_show_on_the_log_and_usage,
    test_revoke_in_the_ui_then_the_proxy_answers_401,
    test_a_member_sees_only_their_own_data_and_gets_403_on_admin_pages,
    test_a_form_post_without_the_csrf_token_or_from_another_origin_is_refused,
    test_hostile_names_and_labels_render_as_text,
    test_the_csp_header_is_on_every_page,
    test_the_system_page_downloads_a_backup,
    test_change_a_price_and_the_next_request_costs_it,
    test_an_unpriced_model_gets_a_price_in_one_click,
    test_edit_a_key_and_a_user_in_place,
]


def main():
    os.makedirs(SHOTS, exist_ok=True)
    passed, failed = 0, 0
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        ctx = browser.new_context(viewport={"width": 1280, "height": 800})
        ctx.set_default_timeout(15000)
        admin = ctx.new_page()
        sign_in(admin, os.environ["TOLLGATE_ADMIN_USER"], os.environ["TOLLGATE_ADMIN_PASSWORD"])
        expect(admin).to_have_url(f"{ADMIN}/ui/")
        for test in TESTS:
            args = {"browser": browser, "admin": admin}
            wanted = test.__code__.co_varnames[: test.__code__.co_argcount]
            started = time.monotonic()
            try:
                test(**{k: args[k] for k in wanted})
                passed += 1
                print(f"ok      {test.__name__} ({time.monotonic() - started:.1f} s)", flush=True)
            except Exception:  # noqa: BLE001 - every failure is reported, then the next test runs
                failed += 1
                print(f"FAILED  {test.__name__}", flush=True)
                traceback.print_exc()
                try:
                    shot(admin, f"failed-{test.__name__}")
                except Exception:  # noqa: BLE001
                    pass
        browser.close()
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
