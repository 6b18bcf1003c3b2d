"""The pages over the in-process app: forms need their CSRF token, the token stays in its cookie, pages do not
shadow the API or the Hub routes, errors are HTML pages with the error's status, cards cannot run anything."""

from __future__ import annotations

import re
from typing import Any

import pytest
from apitools import Hub, push
from fastapi.testclient import TestClient

from aiprov.web.card import render_card
from aiprov.web.pages import CSP


@pytest.fixture
def models(hub: Hub, make_model: Any) -> dict[str, Any]:
    iris = push(hub.container, make_model({"w.bin": b"one", "README.md": b"# Card"}), "alice/iris", tags=["demo"])
    # An owner named `models`: its Hub paths `/models/iris/resolve/...` must still reach the Hub routes.
    owned = push(hub.container, make_model({"w.bin": b"two"}), "models/iris")
    return {"iris": iris.version, "owned": owned.version}


def _csrf(client: TestClient, path: str = "/login") -> str:
    page = client.get(path)
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


def test_pages_render_with_a_strict_content_security_policy(client: TestClient, models: dict[str, Any]) -> None:
    for path in ("/", "/models", "/models/alice/iris", "/log", "/log?index=0", "/accounts/alice", "/login"):
        r = client.get(path)
        assert r.status_code == 200, (path, r.text)
        assert r.headers["content-type"].startswith("text/html")
        assert r.headers["content-security-policy"] == CSP
        assert "default-src 'none'" in CSP and "script-src 'self'" in CSP and "http" not in CSP
    assert "<h1>Card</h1>" in client.get("/models/alice/iris").text


def test_pages_do_not_shadow_the_api_or_the_hub_routes(client: TestClient, models: dict[str, Any]) -> None:
    assert client.get("/api/v1/models").json()[0]["name"] == "alice/iris"
    hub_file = client.get("/models/iris/resolve/main/w.bin")
    assert hub_file.status_code == 200 and hub_file.content == b"two"
    assert client.get("/alice/iris/resolve/main/w.bin").content == b"one"
    assert client.get("/api/models/alice/iris").json()["id"] == "alice/iris"
    assert client.get("/checkpoint").text.endswith("\n")
    assert client.get("/-/static/verify.js").headers["content-type"].startswith("text/javascript")


def test_errors_are_html_pages_with_the_errors_status(client: TestClient, models: dict[str, Any]) -> None:
    missing = client.get("/models/alice/nope")
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("text/html")
    assert "alice/nope" in missing.text
    bad_sort = client.get("/models?sort=size")
    assert bad_sort.status_code == 422 and "cannot sort models by" in bad_sort.text
    assert client.get("/models?min=accuracy").status_code == 422
    assert client.get("/log?index=999").status_code == 404


def test_login_keeps_the_token_in_an_httponly_strict_cookie_only(client: TestClient, hub: Hub) -> None:
    token = hub.tokens["alice"]
    r = client.post(
        "/login", data={"token": token, "csrf": _csrf(client), "next": "/accounts/alice"}, follow_redirects=False
    )
    assert r.status_code == 303 and r.headers["location"] == "/accounts/alice"
    cookie = next(h for h in r.headers.get_list("set-cookie") if h.startswith("aiprov_token="))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    page = client.get("/accounts/alice")
    assert 'id="whoami">alice<' in page.text and token not in page.text


def test_a_login_never_redirects_off_the_hub(client: TestClient, hub: Hub) -> None:
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        r = client.post(
            "/login", data={"token": hub.tokens["bob"], "csrf": _csrf(client), "next": target}, follow_redirects=False
        )
        assert r.headers["location"] == "/models", target


@pytest.mark.parametrize(
    ("path", "data"),
    [
        ("/login", {"token": "x"}),
        ("/logout", {}),
        ("/models/alice/iris/try", {"rows": "[[1, 2, 3, 4]]"}),
    ],
)
def test_a_form_without_its_csrf_token_is_refused(
    client: TestClient, hub: Hub, models: dict[str, Any], path: str, data: dict[str, str]
) -> None:
    right = _csrf(client)
    for csrf in (None, "", "x" * 43):
        sent = {**data, "token": hub.tokens["alice"]} if path == "/login" else dict(data)
        if csrf is not None:
            sent["csrf"] = csrf
        r = client.post(path, data=sent, follow_redirects=False)
        assert r.status_code == 403, (csrf, r.text)
        assert "CSRF" in r.text
        assert not any(h.startswith("aiprov_token=") for h in r.headers.get_list("set-cookie"))
    assert right  # the cookie's own token was there all along: only the form lacked it


def test_trying_a_model_needs_a_login_with_the_write_scope(client: TestClient, models: dict[str, Any]) -> None:
    r = client.post("/models/alice/iris/try", data={"rows": "[[1]]", "csrf": _csrf(client)})
    assert r.status_code == 401 and "needs an API token" in r.text


def test_anonymous_reads_off_sends_readers_to_log_in(hub: Hub) -> None:
    from aiprov.api import create_app
    from aiprov.config import Container

    closed = Container(hub.container.settings.model_copy(update={"anonymous_reads": False}))
    try:
        client = TestClient(create_app(closed))
        r = client.get("/models")
        assert r.status_code == 401 and "/login?next=" in r.text
        assert client.get("/login").status_code == 200
    finally:
        closed.close()


@pytest.mark.parametrize(
    "card",
    [
        b"<script>alert(1)</script>",
        b'<img src=x onerror="alert(1)">',
        b"[x](javascript:alert(1))",
        b'[x](JaVaScRiPt:alert(1) "t")',
        b"<a href='javascript:alert(1)'>x</a>",
        b"![i](https://elsewhere.example/a.png)",
        b"<svg onload=alert(1)>",
        b"[x](&#106;avascript:alert(1))",
    ],
)
def test_a_card_cannot_run_script_or_load_from_elsewhere(card: bytes) -> None:
    html = str(render_card(card)).lower()
    assert "<script" not in html and "<img" not in html and "<svg" not in html and "<a href='javascript" not in html
    assert not re.search(r"<[^>]+\son\w+=", html)
    assert 'href="javascript' not in html and 'elsewhere.example/a.png"' not in html


def test_a_card_keeps_markdown_and_shows_entities_as_written() -> None:
    html = str(render_card(b"# T\n\n| a | b |\n| - | - |\n| 1 | 2 |\n\n&lt;b&gt; [ok](https://example.org)"))
    assert "<h1>T</h1>" in html and "<table>" in html and "&lt;b&gt;" in html
    assert '<a href="https://example.org" rel="nofollow noopener noreferrer">ok</a>' in html


def test_the_model_page_reads_everything_in_one_transaction(
    client: TestClient, hub: Hub, models: dict[str, Any]
) -> None:
    from sqlalchemy import event

    engine = hub.container.db.engine
    assert client.get("/models/alice/iris").status_code == 200  # warm: the schema checked once, caches filled
    begun: list[object] = []

    def count(conn: object) -> None:
        begun.append(conn)

    event.listen(engine, "begin", count)
    try:
        assert client.get("/models/alice/iris").status_code == 200
        assert client.get("/models/alice/iris?v=1").status_code == 200
    finally:
        event.remove(engine, "begin", count)
    assert len(begun) == 2


def test_the_model_page_shows_each_files_format_and_verdict(client: TestClient, models: dict[str, Any]) -> None:
    page = client.get("/models/alice/iris").text
    rows = dict(re.findall(r'<tr data-path="([^"]+)".*?<span class="verdict file-verdict">([^<]+)</span>', page))
    assert rows == {"README.md": "safe", "w.bin": "safe"}  # b"one" is text
    assert page.count('<td class="format">text</td>') == 2


def test_file_verdicts_of_an_event_logged_before_they_were_recorded_are_not_recorded() -> None:
    from aiprov.core.digest import Digest
    from aiprov.core.manifest import Manifest, ManifestEntry
    from aiprov.web.views import file_scans

    manifest = Manifest.build([ManifestEntry("a", 1, Digest.of(b"a")), ManifestEntry("b", 1, Digest.of(b"b"))])
    assert file_scans(manifest, {"scan": "safe"}) == {}
    assert file_scans(manifest, {"file_scans": [["text", "safe"]]}) == {}  # not one per file
    assert file_scans(manifest, {"file_scans": [["text", "safe"], ["npy", 3]]}) == {}
    assert file_scans(manifest, {"file_scans": [["text", "safe"], ["npy", "safe"]]}) == {
        "a": ("text", "safe"),
        "b": ("npy", "safe"),
    }


def test_the_list_filters_by_format_and_sorts_by_downloads_metric_and_reputation(
    client: TestClient, hub: Hub, models: dict[str, Any], make_model: Any
) -> None:
    def listed(query: str) -> list[str]:
        r = client.get("/models?" + query)
        assert r.status_code == 200, r.text
        return re.findall(r'<a class="name" href="/models/([^"]+)">', r.text)

    push(hub.container, make_model({"w.bin": b"\x00\xff\x00\x01"}), "bob/opaque")
    assert listed("format=text") == ["alice/iris", "models/iris"]
    assert listed("format=unknown") == ["bob/opaque"]
    assert listed("format=onnx") == []
    hub.container.registry.record_download(models["owned"])
    assert listed("sort=downloads") == ["models/iris", "alice/iris", "bob/opaque"]
    assert listed("sort=name") == ["alice/iris", "bob/opaque", "models/iris"]
    hub.container.claims.rate("bob/opaque", 5, actor="alice")
    assert listed("sort=reputation") == ["bob/opaque", "alice/iris", "models/iris"]
    assert listed("sort=metric:accuracy") == ["alice/iris", "bob/opaque", "models/iris"]
    page = client.get("/models?sort=metric:accuracy").text
    assert '<option value="metric:accuracy" selected>best accuracy</option>' in page
    for bad in ("format=Not%20a%20format", "sort=metric:speed", "sort=downloads;drop"):
        r = client.get("/models?" + bad)
        assert r.status_code == 422 and "Traceback" not in r.text, bad
    api = client.get("/api/v1/models", params={"format": "text", "sort": "downloads"})
    assert [m["name"] for m in api.json()] == ["models/iris", "alice/iris"]
    assert [m["name"] for m in client.get("/api/v1/models", params={"sort": "reputation"}).json()] == [
        "bob/opaque",
        "alice/iris",
        "models/iris",
    ]
    assert client.get("/api/v1/models", params={"sort": "size"}).status_code == 422


def test_a_push_event_without_file_verdicts_shows_them_as_not_recorded(
    client: TestClient, hub: Hub, make_model: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aiprov.services import registry

    monkeypatch.setattr(registry, "MAX_FILE_SCANS_BYTES", 10)
    push(hub.container, make_model({"w.bin": b"old"}), "alice/old")
    page = client.get("/models/alice/old").text
    assert '<span class="verdict file-verdict">not recorded</span>' in page
    assert '<span class="verdict" id="scan">safe</span>' in page
