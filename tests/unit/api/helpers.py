"""Shared assertions for the API tests."""

from __future__ import annotations

import httpx


def assert_error(response: httpx.Response, status: int, error: str | None = None) -> str:
    """The response is the app's JSON error shape with this status; returns its detail."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.text
    body = response.json()
    assert set(body) == {"error", "detail"}, body
    assert isinstance(body["detail"], str)
    assert body["detail"]
    if error is not None:
        assert body["error"] == error
    return str(body["detail"])
