from __future__ import annotations

import httpx


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
