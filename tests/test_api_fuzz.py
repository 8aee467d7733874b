"""Schemathesis over the whole OpenAPI schema, against a real server: no input makes a 500.

It runs twice: with accounts off (one implicit user, so every route's body is reached), and with
accounts on, signed with an admin's API key (the account and admin routes for real).

Every operation gets generated valid and invalid input (bodies, path ids, query strings,
headers such as Last-Event-ID); the check is that the answer is never a server error, that
errors keep their JSON shape, and that every answer is one the document describes (a documented
status, content type and schema).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from ssechat.api import create_app
from ssechat.config import Settings

from .conftest import RealServer, run_uvicorn

pytestmark = pytest.mark.real_server


DOCUMENTED = [status_code_conformance, content_type_conformance, response_schema_conformance]


ADMIN = {"email": "fuzz@example.com", "password": "fuzzing-password"}


@pytest.fixture(scope="module", params=["off", "on"])
def live_api(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RealServer, dict[str, str]]]:
    tmp = tmp_path_factory.mktemp("fuzz")
    config = Settings(
        database_url=str(Path(tmp) / "fuzz.db"),
        demo_tokens_per_second=0,
        heartbeat=5,
        web_dir=str(Path(tmp) / "no-web"),
        auth=request.param,
        admin_email=ADMIN["email"] if request.param == "on" else "",
        admin_password=ADMIN["password"] if request.param == "on" else "",
    )
    with run_uvicorn(create_app(config), lifespan="on") as server:
        headers: dict[str, str] = {}
        if request.param == "on":
            with httpx.Client(base_url=server.base_url) as client:
                assert client.post("/api/auth/login", json=ADMIN).status_code == 200
                key = client.post("/api/keys", json={"name": "fuzz"}).json()["key"]
            headers = {"Authorization": f"Bearer {key}"}
        yield server, headers


def test_no_input_makes_a_server_error(live_api: tuple[RealServer, dict[str, str]]) -> None:
    server, auth = live_api
    # Driven by hand (strategy per operation, positive and negative data) rather than through
    # schemathesis' pytest plugin, which does not load under this pytest.
    schema = schemathesis.openapi.from_url(f"{server.base_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 14
    checked = 0
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
            def check(case: Any) -> None:
                nonlocal checked
                response = case.call(base_url=server.base_url, timeout=20, headers=auth)
                checked += 1
                where = (case.method, case.formatted_path, case.body, case.query, case.headers)
                assert response.status_code < 500, (where, response.text[:300])
                if response.status_code >= 400:
                    error = response.json()["error"]
                    assert isinstance(error["code"], str), where
                    assert error["message"], where
                case.validate_response(response, checks=DOCUMENTED)

            try:
                check()
            except Unsatisfiable:
                # No invalid input exists for an operation without parameters (GET /health).
                assert mode is GenerationMode.NEGATIVE
    assert checked > 100
