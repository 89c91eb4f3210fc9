"""Computing Platform: a frame refused because its hub had no key is decoded again once the key
arrives (an import, or ``PUT /api/v1/hubs/{id}`` with a key), in the order the frames arrived;
a re-post of such a bundle then answers the new outcome as an idempotent replay."""

from __future__ import annotations

from datetime import timedelta

from dsp.air import messages as M
from platform_api.testing import bundles_for, fleet, gridmodel, slot_time

T0 = slot_time(448_826_400)


def _alert(k: int) -> M.Alert:
    t = T0 + timedelta(seconds=8 * k)
    return M.Alert(M.AlertType.SAG, int(t.timestamp()), 200.0 + k, 3)


def _stored(p, bundle_id: str) -> dict:
    r = p.client.get(f"/api/v1/bundles/{bundle_id}")
    assert r.status_code == 200, r.text
    return r.json()


def _refused_then_posted(p, hub, n: int) -> list[dict]:
    out = []
    for k in range(n):
        (b,) = bundles_for(hub, _alert(k), at=T0 + timedelta(seconds=8 * k))
        r = p.post(b)
        assert r.status_code == 201, r.text
        assert (r.json()["status"], r.json()["reason"]) == ("rejected", "unknown_hub")
        out.append(b)
    return out


def test_an_import_decodes_the_frames_that_waited_for_the_key(platform):
    hub, other = fleet(2, meters=(2, 2))
    waiting = _refused_then_posted(platform, hub, 3)
    (still,) = _refused_then_posted(platform, other, 1)
    received = _stored(platform, waiting[0]["bundle_id"])["received_at"]

    counts = platform.import_model(gridmodel([hub]))["counts"]
    assert counts["decoded_again"] == 3
    for b in waiting:
        row = _stored(platform, b["bundle_id"])
        assert (row["status"], row["reason"]) == ("accepted", None), row
        again = platform.post(b)  # the receiver's re-post learns the new outcome
        assert again.status_code == 201 and again.headers.get("Idempotent-Replayed") == "true"
        assert again.json()["status"] == "accepted"
    assert _stored(platform, waiting[0]["bundle_id"])["received_at"] == received
    assert _stored(platform, still["bundle_id"])["reason"] == "unknown_hub"  # its hub has no key yet
    left = platform.client.get("/api/v1/rejections", params={"reason": "unknown_hub"}).json()
    assert [r["bundle_id"] for r in left] == [still["bundle_id"]]
    assert len(platform.client.get("/api/v1/messages", params={"hub_id": hub.hub_id}).json()) == 3


def test_a_key_entered_by_hand_decodes_them_too(platform):
    (hub,) = fleet(1, meters=(2, 2))
    (b,) = _refused_then_posted(platform, hub, 1)
    r = platform.client.put(
        f"/api/v1/hubs/{hub.hub_id}", json={"key_hex": hub.key.hex(), "substation_id": "sub-1"}, headers=platform.admin
    )
    assert r.status_code == 200, r.text
    assert _stored(platform, b["bundle_id"])["status"] == "accepted"


def test_a_wrong_key_leaves_them_refused_for_that_reason(platform):
    (hub,) = fleet(1, meters=(2, 2))
    (b,) = _refused_then_posted(platform, hub, 1)
    r = platform.client.put(
        f"/api/v1/hubs/{hub.hub_id}", json={"key_hex": "00" * 16, "substation_id": "sub-1"}, headers=platform.admin
    )
    assert r.status_code == 200, r.text
    row = _stored(platform, b["bundle_id"])
    assert (row["status"], row["reason"]) == ("rejected", "auth")
