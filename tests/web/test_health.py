from __future__ import annotations

import gc

import httpx

from server.store.database import Database
from tests.servers import RunningServer, make_settings


async def test_healthz_answers_ok(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url) as client:
        response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_reports_the_database(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url) as client:
        response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "database": "ok", "broker": "ok"}


async def test_unknown_pages_are_pages_and_unknown_api_paths_are_json(
    base_url: str,
) -> None:
    async with httpx.AsyncClient(base_url=base_url) as client:
        page = await client.get("/no-such-page", headers={"Accept": "text/html"})
        api = await client.get("/api/no-such-thing", headers={"Accept": "text/html"})
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "Page not found" in page.text
    assert api.status_code == 404
    assert api.json() == {"error": {"code": "not_found", "message": "Not found."}}


async def test_static_files_are_revalidated_and_answers_are_not_cached(
    base_url: str,
) -> None:
    async with httpx.AsyncClient(base_url=base_url) as client:
        static = await client.get("/static/tickmark.css")
        again = await client.get(
            "/static/tickmark.css", headers={"If-None-Match": static.headers["etag"]}
        )
        api = await client.get("/healthz")
    assert static.headers["cache-control"] == "no-cache"
    assert again.status_code == 304
    assert api.headers["cache-control"] == "no-store"


async def test_metrics_are_served_to_this_machine_only(db: Database) -> None:
    async with (
        RunningServer(make_settings(), db) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        local = await client.get("/metrics")
    assert local.status_code == 200
    assert local.headers["content-type"].startswith("text/plain")
    for name in (
        "tickmark_ws_connections 0.0",
        "tickmark_broker_up 1.0",
        "tickmark_messages_published_total 0.0",
        "tickmark_ws_slow_consumers_total 0.0",
    ):
        assert name in local.text


async def test_metrics_need_the_token_when_one_is_set(db: Database) -> None:
    async with (
        RunningServer(make_settings(metrics_token="scrape-me"), db) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        without = await client.get("/metrics")
        wrong = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
        right = await client.get(
            "/metrics", headers={"Authorization": "Bearer scrape-me"}
        )
    assert without.status_code == wrong.status_code == 404
    assert right.status_code == 200


def _full_collections(metrics_text: str) -> float:
    [line] = [
        line
        for line in metrics_text.splitlines()
        if line.startswith("tickmark_gc_full_pause_seconds_count ")
    ]
    return float(line.split()[1])


async def test_full_garbage_collections_are_timed_while_the_server_runs(
    db: Database,
) -> None:
    watchers = len(gc.callbacks)
    async with (
        RunningServer(make_settings(), db) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        before = _full_collections((await client.get("/metrics")).text)
        gc.collect()
        gc.collect()
        after = _full_collections((await client.get("/metrics")).text)
        watching = len(gc.callbacks)
    assert after - before >= 2
    assert watching == watchers + 1
    # The server stops timing when it stops.
    assert len(gc.callbacks) == watchers
