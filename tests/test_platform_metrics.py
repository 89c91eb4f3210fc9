"""The platform's /metrics (prometheus_client, parsed back with its parser): request latency
per route template, a registry per app."""

from __future__ import annotations

from tests.test_service_metrics import parse


def test_metrics_time_every_request_by_route_template(platform_make):
    p = platform_make()
    c = p.client
    for _ in range(3):
        assert c.get("/healthz").status_code == 200
    assert c.get("/api/v1/hubs/12345").status_code in (401, 404)
    assert c.get("/no/such/path/abc").status_code == 404
    assert c.post("/api/v1/bundles", content=b"{}", headers=p.auth).status_code == 422
    r = c.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain; version=0.0.4")
    types, m = parse(r.text)
    assert types["gla_platform_request_duration_seconds"] == "histogram"
    key = 'gla_platform_request_duration_seconds_count{method="GET",route="/healthz",status="200"}'
    assert m[key] == 3
    # by the template, never the raw path: the label set stays bounded
    hub = [k for k in m if "_count" in k and 'route="/api/v1/hubs/{hub_id}"' in k]
    assert len(hub) == 1 and m[hub[0]] == 1 and "12345" not in r.text
    assert m['gla_platform_request_duration_seconds_count{method="GET",route="<unmatched>",status="404"}'] == 1
    assert "abc" not in r.text
    assert m['gla_platform_request_duration_seconds_count{method="POST",route="/api/v1/bundles",status="422"}'] == 1
    buckets = [k for k in m if k.startswith("gla_platform_request_duration_seconds_bucket") and 'route="/healthz"' in k]
    assert len(buckets) >= 10 and m[key.replace("_count", "_bucket").replace("{", '{le="+Inf",')] == 3
    info = [k for k in m if k.startswith("gla_platform_info{")]
    assert len(info) == 1 and 'mode="substation"' in info[0]
    # a second app in the same process counts its own requests only
    q = platform_make()
    _, m2 = parse(q.client.get("/metrics").text)
    assert key not in m2
