"""Security posture over real HTTP: the API key on every route but /health, the Host check against DNS
rebinding on loopback, CORS only for the origins given."""

from __future__ import annotations

import httpx
import pytest

from embedkit.config import ServeConfig
from embedkit.serve.guards import accepted_hosts, host_name, is_loopback

TIMEOUT = 60.0
KEY = "s3cret-0123"


@pytest.fixture(scope="module")
def url(minilm, start_module_server):
    from embedkit.serve.app import create_app

    config = ServeConfig(api_key=KEY, cors_origins=["https://app.example"], allowed_hosts=["search.internal"])
    return start_module_server(create_app(minilm, config))


ROUTES = [("GET", "/info", None), ("GET", "/metrics", None), ("GET", "/v1/models", None),
          ("POST", "/search", {"query": "a"}), ("POST", "/v1/embeddings", {"input": "a"}),
          ("POST", "/rerank", {"query": "a", "documents": ["b"]}), ("GET", "/nowhere", None)]


@pytest.mark.parametrize("method, path, body", ROUTES)
def test_every_route_but_health_needs_the_key(url, method, path, body):
    def call(headers: dict[str, str]) -> httpx.Response:
        return httpx.request(method, f"{url}{path}", json=body, headers=headers, timeout=TIMEOUT)

    missing, wrong = call({}), call({"authorization": f"Bearer {KEY}x"})
    for reply, problem in ((missing, "missing API key"), (wrong, "wrong API key")):
        assert reply.status_code == 401 and reply.headers["www-authenticate"] == "Bearer"
        assert reply.json() == {"error": f"{problem}: send the header 'Authorization: Bearer KEY'"}
    assert call({"authorization": f"Basic {KEY}"}).status_code == 401
    assert call({"authorization": KEY}).status_code == 401
    good = call({"authorization": f"bearer {KEY}"})  # the scheme is case-insensitive
    assert good.status_code == (404 if path == "/nowhere" else 200)


def test_health_is_open(url):
    assert httpx.get(f"{url}/health", timeout=TIMEOUT).status_code == 200
    assert httpx.head(f"{url}/health", timeout=TIMEOUT).status_code == 200


def test_host_header_is_checked_on_loopback(url):
    auth = {"authorization": f"Bearer {KEY}"}
    port = url.rsplit(":", 1)[1]
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", "LOCALHOST", f"[::1]:{port}", "search.internal:80"):
        assert httpx.get(f"{url}/info", headers=auth | {"host": host}, timeout=TIMEOUT).status_code == 200, host
    for host in (f"evil.example:{port}", "localhost.evil.example", "127.0.0.2"):  # what a rebinding page sends
        reply = httpx.get(f"{url}/health", headers={"host": host}, timeout=TIMEOUT)
        assert reply.status_code == 400 and "is not served here" in reply.json()["error"], host


def test_cors_only_for_the_given_origins(url, minilm, start_server):
    from embedkit.serve.app import create_app

    auth = {"authorization": f"Bearer {KEY}"}
    allowed = httpx.get(f"{url}/info", headers=auth | {"origin": "https://app.example"}, timeout=TIMEOUT)
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    other = httpx.get(f"{url}/info", headers=auth | {"origin": "https://evil.example"}, timeout=TIMEOUT)
    assert "access-control-allow-origin" not in other.headers
    preflight = httpx.options(f"{url}/search", timeout=TIMEOUT, headers={
        "origin": "https://app.example", "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type"})  # browsers send no key on preflight
    assert preflight.status_code == 200 and "POST" in preflight.headers["access-control-allow-methods"]
    plain = start_server(create_app(minilm, ServeConfig()))  # no --cors-origin: no CORS headers at all
    reply = httpx.get(f"{plain}/info", headers={"origin": "https://app.example"}, timeout=TIMEOUT)
    assert reply.status_code == 200 and "access-control-allow-origin" not in reply.headers
    assert httpx.options(f"{plain}/search", headers={"origin": "https://app.example",
                                                     "access-control-request-method": "POST"},
                         timeout=TIMEOUT).status_code == 405


def test_host_rules():
    assert [host_name(h) for h in (b"[::1]:8000", b"LocalHost.:80", b"a.b", b"::1")] == ["::1", "localhost", "a.b",
                                                                                        "::1"]
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and is_loopback("127.1.2.3")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5") and not is_loopback("example.com")
    assert accepted_hosts("127.0.0.1", []) == {"localhost", "127.0.0.1", "::1"}
    assert accepted_hosts("0.0.0.0", []) is None  # exposed: names unknown, the API key protects it
    assert accepted_hosts("0.0.0.0", ["api.example.com:443"]) == {"api.example.com"}
    assert accepted_hosts("127.0.0.1", ["*"]) is None
