"""Qdrant's health endpoints, open to every caller."""
import httpx


def test_health_endpoints_answer_as_qdrant(module_server):
    for path, text in (("/healthz", "healthz check passed"), ("/livez", "healthz check passed"),
                       ("/readyz", "all shards are ready")):
        r = httpx.get(module_server.url + path, timeout=10)
        assert r.status_code == 200 and r.text == text, (path, r.text)
