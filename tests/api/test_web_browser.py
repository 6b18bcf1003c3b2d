"""The pages in a real browser: Debian's chromium driven by Playwright against a real `aiprov serve`.

One server per module over a home holding: alice/iris (a trained classifier with a card, evaluated, signed),
alice/iris-small (its child), bob/other, carol/m-00..24 (for paging) and eve/xss (hostile text everywhere).
Each test saves a screenshot of its last page under `tmp/artifacts/` (or `$AIPROV_TEST_ARTIFACTS`).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from apitools import Server, init_home, push, start_server

from aiprov.core.note import Signer

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("AIPROV_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "tmp" / "artifacts"))
FEATURES = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
CARD = """# Iris classifier

A logistic regression on the Iris data.

| metric | value |
| --- | --- |
| accuracy | high |
"""
HOSTILE_CARD = """# Hostile <script>window.__xss = 'card'</script>

<img src=x onerror="window.__xss = 'img'">

[click me](javascript:window.__xss='link') &amp; &lt;b&gt;entities&lt;/b&gt;
"""
HOSTILE_DESCRIPTION = "<script>window.__xss = 'description'</script> &amp; <b onmouseover=alert(1)>x</b>"
HOSTILE_LICENSE = "<img src=x onerror=window.__xss='license'>"
HOSTILE_FILE = "<img src=x onerror=window.__xss='file'>.txt"
WIDE = """() => Array.from(document.querySelectorAll("body *"))
    .filter((e) => e.getBoundingClientRect().right > 390 && !e.closest(".scroll"))
    .map((e) => e.tagName + "#" + e.id + "." + e.className).slice(0, 8)"""
XSS_PROBE = "() => window.__xss === undefined ? null : String(window.__xss)"


@dataclass
class Site:
    server: Server
    tokens: dict[str, str]
    digests: dict[str, str]

    def url(self, path: str) -> str:
        return self.server.base_url + path


def _iris(root: Path) -> None:
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    root.mkdir(parents=True)
    joblib.dump(LogisticRegression(max_iter=500).fit(x, y), root / "model.joblib")
    (root / "config.json").write_text(json.dumps({"features": FEATURES}))
    (root / "README.md").write_text(CARD)


def _files(root: Path, files: dict[str, bytes]) -> Path:
    root.mkdir(parents=True)
    for name, data in files.items():
        (root / name).write_bytes(data)
    return root


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    from aiprov import signing

    work = tmp_path_factory.mktemp("web")
    container, admin = init_home(work / "home")
    tokens = {name: container.accounts.add_user(name).token for name in ("alice", "bob")}
    _iris(work / "iris")
    iris = push(container, work / "iris", "alice/iris", description="Iris flowers", tags=["demo"], license="mit")
    container.evaluation.evaluate("alice/iris", benchmark="iris", actor="alice")
    private, _ = signing.generate_key_pair()
    container.signatures.sign("alice/iris@1", signing.private_key_from_pem(private), actor="alice")
    child = push(
        container,
        _files(work / "small", {"w.bin": b"smaller"}),
        "alice/iris-small",
        parents=[str(iris.version.manifest.digest)],
        datasets=["iris"],
    )
    push(container, _files(work / "other", {"w.bin": b"other"}), "bob/other", description="something else")
    container.registry.record_download(child.version)  # the only download: first by downloads
    container.claims.rate("bob/other", 5, actor="alice")  # bob's reputation +2: first by reputation
    for i in range(25):
        push(container, _files(work / f"m{i}", {"w.bin": b"m%d" % i}), f"carol/m-{i:02d}", license="apache-2.0")
    push(
        container,
        _files(work / "xss", {"README.md": HOSTILE_CARD.encode(), HOSTILE_FILE: b"x"}),
        "eve/xss",
        description=HOSTILE_DESCRIPTION,
        license=HOSTILE_LICENSE,
        params={"lr": "<script>window.__xss='param'</script>"},
    )
    container.close()
    server = start_server(work / "home", admin)
    digests = {"iris": str(iris.version.manifest.digest), "small": str(child.version.manifest.digest)}
    yield Site(server, tokens, digests)
    server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's chromium under Playwright's sync API, for this module's tests only.

    Module scope, not session: while `sync_playwright()` is open it keeps an asyncio loop running in the thread,
    and every later test of the same worker that calls `asyncio.run` would fail.
    """
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install -y chromium` (.ci/run installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@dataclass
class Tab:
    page: Any
    requests: list[str]
    dialogs: list[str]
    errors: list[str]


@pytest.fixture
def open_tab(browser: Any, request: pytest.FixtureRequest) -> Iterator[Callable[..., Tab]]:
    """Factory: a page in a fresh browser context (its own cookies and localStorage), every request recorded."""
    contexts: list[Any] = []
    tabs: list[Tab] = []

    def make(**options: Any) -> Tab:
        context = browser.new_context(**{"viewport": {"width": 1200, "height": 900}, **options})
        contexts.append(context)
        page = context.new_page()
        tab = Tab(page, [], [], [])
        page.on("request", lambda r: tab.requests.append(r.url))
        page.on("dialog", lambda d: (tab.dialogs.append(d.message), d.dismiss()))
        page.on("pageerror", lambda e: tab.errors.append(str(e)))
        tabs.append(tab)
        return tab

    yield make
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    for i, tab in enumerate(tabs):
        if not tab.page.is_closed():
            tab.page.screenshot(path=str(ARTIFACTS / f"{name}{'-' + str(i) if i else ''}.png"), full_page=True)
    for context in contexts:
        context.close()


def badge(page: Any) -> tuple[str, str]:
    """Wait for the provenance badge to settle; return its state (`ok` or `bad`) and its text."""
    page.wait_for_selector("#badge[data-state=ok], #badge[data-state=bad]", timeout=20_000)
    b = page.locator("#badge")
    return str(b.get_attribute("data-state")), b.inner_text()


def test_search_filters_sort_and_pages(site: Site, open_tab: Callable[..., Tab]) -> None:
    page = open_tab().page
    page.goto(site.url("/models"))
    assert page.locator("#count").inner_text() == "29 models"
    assert page.locator("#models li").count() == 20
    page.click("#next")
    assert "page 2 of 2" in page.locator("#pages").inner_text()
    assert page.locator("#models li").count() == 9

    page.fill("#q", "iris")
    page.click("#search")
    assert page.locator("#count").inner_text() == "2 models"
    assert page.locator("#models .name").all_inner_texts() == ["alice/iris", "alice/iris-small"]

    page.goto(site.url("/models"))
    page.fill("#owner", "bob")
    page.click("#search")
    assert page.locator("#models .name").all_inner_texts() == ["bob/other"]

    page.goto(site.url("/models"))
    page.fill("#license", "mit")
    page.click("#search")
    assert page.locator("#models .name").all_inner_texts() == ["alice/iris"]

    page.goto(site.url("/models"))
    page.fill("#min", "accuracy=0.5")
    page.click("#search")
    assert page.locator("#models .name").all_inner_texts() == ["alice/iris"]

    page.goto(site.url("/models?q=iris"))
    page.select_option("#scan", "safe")
    page.click("#search")
    assert page.locator("#models .name").all_inner_texts() == ["alice/iris", "alice/iris-small"]
    page.select_option("#scan", "unsupported")
    page.click("#search")
    assert page.locator("#count").inner_text() == "0 models"

    page.goto(site.url("/models?tag=demo"))
    assert page.locator("#models .name").all_inner_texts() == ["alice/iris"]

    page.goto(site.url("/models"))
    page.select_option("#sort", "updated")
    page.click("#search")
    names = page.locator("#models .name").all_inner_texts()
    assert names[0] == "eve/xss"  # the newest push
    page.select_option("#sort", "name")
    page.click("#search")
    assert page.locator("#models .name").all_inner_texts()[:3] == ["alice/iris", "alice/iris-small", "bob/other"]


def test_format_filter_and_the_sorts_by_downloads_metric_and_reputation(
    site: Site, open_tab: Callable[..., Tab]
) -> None:
    page = open_tab().page
    page.goto(site.url("/models"))
    page.fill("#format", "joblib")
    page.click("#search")
    assert page.locator("#models .name").all_inner_texts() == ["alice/iris"]
    page.fill("#format", "onnx")
    page.click("#search")
    assert page.locator("#count").inner_text() == "0 models"

    page.goto(site.url("/models"))
    for sort, first in (
        ("downloads", ["alice/iris-small", "alice/iris", "bob/other"]),
        ("metric:accuracy", ["alice/iris", "alice/iris-small", "bob/other"]),
        ("reputation", ["bob/other", "alice/iris", "alice/iris-small"]),
    ):
        page.select_option("#sort", sort)
        page.click("#search")
        assert page.locator("#count").inner_text() == "29 models"
        assert page.locator("#models .name").all_inner_texts()[:3] == first, sort
        assert page.locator("#sort").input_value() == sort  # the choice is kept


def test_the_model_page_shows_each_files_format_and_scan_verdict(site: Site, open_tab: Callable[..., Tab]) -> None:
    page = open_tab().page
    page.goto(site.url("/models/alice/iris"))
    rows = page.locator("#file-table tbody tr")
    seen = {
        rows.nth(i).get_attribute("data-path"): (
            rows.nth(i).locator(".format").inner_text(),
            rows.nth(i).locator(".file-verdict").inner_text(),
        )
        for i in range(rows.count())
    }
    assert seen == {
        "README.md": ("text", "safe"),
        "config.json": ("json", "safe"),
        "model.joblib": ("joblib", "safe"),
    }


def test_model_page_shows_every_section_and_verifies_in_the_browser(site: Site, open_tab: Callable[..., Tab]) -> None:
    tab = open_tab()
    page = tab.page
    page.goto(site.url("/models?q=iris"))
    page.click("text=alice/iris >> nth=0")
    page.wait_for_url(re.compile(r"/models/alice/iris$"))
    state, text = badge(page)
    assert state == "ok", text
    assert "Verified in your browser" in text and "alice/iris@1" in text
    checks = page.locator("#checks li").all_inner_texts()
    assert [c.split(":")[0] for c in checks] == [
        "log key",
        "checkpoint signature",
        "manifest digest",
        "registration entry",
        "inclusion proof",
    ]
    assert "pinned now, on first use" in checks[0]
    assert site.digests["iris"] in checks[2]

    assert page.locator("#card h1").inner_text() == "Iris classifier"
    assert page.locator("#card table").count() == 1
    assert page.locator("#file-table tbody tr").count() == 3
    assert page.locator("#digest").inner_text() == site.digests["iris"]
    assert page.locator("#scan").inner_text() == "safe"
    assert "alice" in page.locator("#signatures tbody").inner_text()
    assert "accuracy" in page.locator("#evaluation-table").inner_text()
    assert page.locator("#evaluations figure svg rect").count() >= 1
    assert "push" in page.locator("#events").inner_text()
    assert not tab.errors

    # A reload finds the pinned key: not first use any more.
    page.reload()
    state, text = badge(page)
    assert state == "ok", text
    assert page.locator("#checks li").first.inner_text().startswith("log key: pinned: ")

    page.click("#lineage-graph a.node-link")  # the child, alice/iris-small@1
    page.wait_for_url(re.compile(r"/models/alice/iris-small"))
    assert page.locator("#title").inner_text().startswith("alice/iris-small")
    assert page.locator("#lineage-graph .node.parent").count() == 1
    assert page.locator("#lineage-graph .node.dataset").text_content() == "iris"
    state, text = badge(page)
    assert state == "ok", text
    page.click("#lineage-graph a.node-link")  # back to its parent
    page.wait_for_url(re.compile(r"/models/alice/iris\?v=1"))


def test_log_in_try_the_model_and_log_out(site: Site, open_tab: Callable[..., Tab]) -> None:
    tab = open_tab()
    page = tab.page
    page.goto(site.url("/models/alice/iris"))
    assert page.locator("#try-form").count() == 0
    page.click("#try >> text=Log in")
    page.fill("#token", site.tokens["alice"])
    page.click("#login-submit")
    page.wait_for_url(re.compile(r"/models/alice/iris$"))
    assert page.locator("#whoami").inner_text() == "alice"
    cookie = next(c for c in page.context.cookies() if c["name"] == "aiprov_token")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert site.tokens["alice"] not in page.content()
    assert page.evaluate("() => document.cookie").find("aiprov_token") < 0  # not readable by a script

    page.fill("#rows", "[[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]")
    page.click("#try-submit")
    answer = json.loads(page.locator("#answer").inner_text())
    assert answer["predictions"] == [0, 2]
    assert answer["model"]["digest"] == site.digests["iris"]
    assert site.tokens["alice"] not in page.content()

    page.fill("#rows", "not json")
    page.click("#try-submit")
    assert "not JSON" in page.locator("#error").inner_text()

    page.goto(site.url("/models/alice/iris"))
    assert page.locator("#usage-table tbody tr").count() >= 1  # the inference just made, per day
    page.click("#logout")
    page.wait_for_url(re.compile(r"/models$"))
    assert page.locator("#login").count() == 1
    assert not [c for c in page.context.cookies() if c["name"] == "aiprov_token"]


def test_a_bad_token_is_refused_on_the_login_page(site: Site, open_tab: Callable[..., Tab]) -> None:
    page = open_tab().page
    page.goto(site.url("/login"))
    page.fill("#token", "aiprov_not-a-real-token")
    page.click("#login-submit")
    assert "not known" in page.locator("#error").inner_text()
    assert not [c for c in page.context.cookies() if c["name"] == "aiprov_token"]


def _flip_signature(note: str) -> str:
    text, _, sigs = note.rpartition("\n\n")
    name, _, encoded = sigs.rstrip("\n").rpartition(" ")
    flipped = encoded[:10] + ("A" if encoded[10] != "A" else "B") + encoded[11:]
    return f"{text}\n\n{name} {flipped}\n"


def _flip_hashes(tile: bytes) -> bytes:
    out = bytearray(tile)
    for i in range(0, len(out), 32):
        out[i] ^= 0x01
    return bytes(out)


def _tamper(page: Any, pattern: str, change: Callable[[bytes], bytes]) -> None:
    """Serve the page what the server sent for URLs matching `pattern`, changed by `change`: a proxy in the browser."""

    def handle(route: Any) -> None:
        response = route.fetch()
        route.fulfill(response=response, body=change(response.body()))

    page.route(re.compile(pattern), handle)


@pytest.mark.parametrize(
    ("what", "pattern", "change", "failed"),
    [
        (
            "checkpoint signature",
            r"/checkpoint$",
            lambda b: _flip_signature(b.decode()).encode(),
            "checkpoint signature",
        ),
        ("a proof hash in a tile", r"/tile/0/", _flip_hashes, "inclusion proof"),
        (
            "one file digest",
            r"/models/alice/iris$",
            lambda b: re.sub(rb'data-sha256="[0-9a-f]', b'data-sha256="f', b, count=1),
            "manifest digest",
        ),
    ],
    ids=["signature", "tile", "file-digest"],
)
def test_tampering_turns_the_badge_red_naming_the_check(
    site: Site, open_tab: Callable[..., Tab], what: str, pattern: str, change: Callable[[bytes], bytes], failed: str
) -> None:
    page = open_tab().page
    page.goto(site.url("/models/alice/iris"))  # pin the key on an honest answer first
    assert badge(page)[0] == "ok"
    _tamper(page, pattern, change)
    page.reload()
    state, text = badge(page)
    assert state == "bad", f"{what}: {text}"
    assert text.startswith(f"Not verified — {failed}:"), text
    assert page.locator(f"#checks li.bad[data-check='{failed}']").count() == 1


def test_a_changed_log_key_is_not_trusted_until_the_reader_pins_it(site: Site, open_tab: Callable[..., Tab]) -> None:
    page = open_tab().page
    page.goto(site.url("/models/alice/iris"))
    assert badge(page)[0] == "ok"
    other = str(Signer.generate(page.locator("#pinned-key").inner_text().split("+")[0]).verifier)
    page.click("#change-key")
    page.fill("#key-input", other)
    page.click("#key-form button[type=submit]")
    state, text = badge(page)
    assert state == "bad" and text.startswith("Not verified — checkpoint signature: no signature by the pinned key")
    assert page.locator("#pinned-key").inner_text() == other
    page.click("#change-key")
    page.click("#key-server")
    state, text = badge(page)
    assert state == "ok", text


def test_pages_request_nothing_from_another_origin(site: Site, open_tab: Callable[..., Tab]) -> None:
    tab = open_tab()
    page = tab.page
    for path in (
        "/models",
        "/models/alice/iris",
        "/models/eve/xss",
        "/log",
        "/log?index=1",
        "/accounts/alice",
        "/login",
    ):
        page.goto(site.url(path))
        if path.startswith("/models/"):
            badge(page)
    assert len(tab.requests) > 10
    foreign = [u for u in tab.requests if not u.startswith(site.server.base_url + "/")]
    assert foreign == []


def test_hostile_text_is_shown_as_text_and_runs_nothing(site: Site, open_tab: Callable[..., Tab]) -> None:
    tab = open_tab()
    page = tab.page
    page.goto(site.url("/models/eve/xss"))
    badge(page)  # a hostile file name still hashes to the logged digest
    assert badge(page)[0] == "ok"
    page.wait_for_timeout(300)
    assert page.evaluate(XSS_PROBE) is None
    assert tab.dialogs == [] and tab.errors == []
    assert page.locator("script").count() == 1  # the hub's own verify.js, nothing from the card
    assert page.locator("a[href^='javascript']").count() == 0
    assert page.locator("[onerror], [onmouseover]").count() == 0
    assert page.locator("#description").inner_text() == HOSTILE_DESCRIPTION
    assert HOSTILE_LICENSE in page.locator(".license").inner_text()
    assert HOSTILE_FILE in page.locator("#file-table").inner_text()
    card = page.locator("#card").inner_text()
    assert "<script>window.__xss = 'card'</script>" in card and "&amp;" not in card and "<b>entities</b>" in card
    assert "<script>window.__xss='param'</script>" in page.locator("#lineage").inner_text()
    page.goto(site.url("/models?q=xss"))
    assert page.evaluate(XSS_PROBE) is None
    assert HOSTILE_DESCRIPTION in page.locator("#models").inner_text()


def test_reading_works_without_javascript(site: Site, open_tab: Callable[..., Tab]) -> None:
    page = open_tab(java_script_enabled=False).page
    page.goto(site.url("/models/alice/iris"))
    assert page.locator("#file-table tbody tr").count() == 3
    assert "needs JavaScript" in page.locator("#badge").inner_text()
    page.goto(site.url("/models"))
    page.fill("#q", "other")
    page.click("#search")
    assert page.locator("#models .name").all_inner_texts() == ["bob/other"]


@pytest.mark.parametrize("scheme", ["dark", "light"])
def test_phone_width_in_both_themes_does_not_scroll_sideways(
    site: Site, open_tab: Callable[..., Tab], scheme: str
) -> None:
    page = open_tab(viewport={"width": 390, "height": 844}, color_scheme=scheme, is_mobile=True).page
    for path in ("/models", "/models/alice/iris", "/log?index=1"):
        page.goto(site.url(path))
        if path.startswith("/models/"):
            badge(page)  # the checks it lists are part of the page
        width = page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= 390, f"{path} is {width}px wide on a 390px screen: {page.evaluate(WIDE)}"
    background = page.evaluate("() => getComputedStyle(document.body).backgroundColor")
    assert background == ("rgb(17, 20, 24)" if scheme == "dark" else "rgb(255, 255, 255)")


@pytest.fixture(scope="module")
def tall_log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A log of 700+ entries: alice/early at entry 0 or so, 700 filler events, then alice/late."""
    from datetime import UTC, datetime

    from aiprov.core.events import Event

    work = tmp_path_factory.mktemp("tall")
    container, admin = init_home(work / "home")
    early = push(container, _files(work / "early", {"w.bin": b"early"}), "alice/early")
    now = datetime.now(UTC)
    filler = [Event(now, "root", "filler", f"sha256:{i:064x}", None, {"i": i}) for i in range(700)]
    with container.db.unit(write=True) as u:
        u.add_events(filler)
    late = push(container, _files(work / "late", {"w.bin": b"late"}), "alice/late")
    container.close()
    server = start_server(work / "home", admin)
    digests = {"early": str(early.version.manifest.digest), "late": str(late.version.manifest.digest)}
    yield Site(server, {}, digests)
    server.stop()


def test_the_proof_from_tiles_spans_tile_levels(tall_log: Site, open_tab: Callable[..., Tab]) -> None:
    page = open_tab().page
    for name in ("early", "late"):
        page.goto(tall_log.url(f"/models/alice/{name}"))
        state, text = badge(page)
        assert state == "ok", (name, text)
    # A hash of tree level 8 (from the level-1 tile) is on the early entry's path: tamper with it.
    _tamper(page, r"/tile/1/", _flip_hashes)
    page.goto(tall_log.url("/models/alice/early"))
    state, text = badge(page)
    assert state == "bad" and text.startswith("Not verified — inclusion proof:"), text
