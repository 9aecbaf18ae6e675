"""Fuzz the API from its own OpenAPI schema (schemathesis): no 5xx, and answers match the schema."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from testkit.stack import Stack

EXAMPLES_PER_OPERATION = 30


@pytest.fixture(scope="module")
def operations(stack: Stack) -> list[schemathesis.APIOperation]:
    schema = schemathesis.openapi.from_url(f"{stack.url}/openapi.json")
    return [result.ok() for result in schema.get_all_operations()]


def test_every_operation_is_fuzzed(operations: list[schemathesis.APIOperation]) -> None:
    paths = {op.path for op in operations}
    assert {"/enhance", "/v1/enhance", "/v1/jobs", "/v1/jobs/{job_id}", "/readyz"} <= paths


@pytest.mark.parametrize(
    "path_method",
    [
        ("/enhance", "POST"),
        ("/v1/enhance", "POST"),
        ("/v1/jobs", "POST"),
        ("/v1/jobs/{job_id}", "GET"),
        ("/v1/jobs/{job_id}/image", "GET"),
        ("/v1/jobs/{job_id}/mask", "GET"),
        ("/healthz", "GET"),
        ("/readyz", "GET"),
    ],
)
def test_operation_matches_its_schema(
    stack: Stack, operations: list[schemathesis.APIOperation], path_method: tuple[str, str]
) -> None:
    path, method = path_method
    [operation] = [op for op in operations if op.path == path and op.method.upper() == method]

    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def check(case: schemathesis.Case) -> None:
        # The schema says "binary"; it cannot say "a decodable photo", so schema-valid random
        # bytes are rightly refused (415/400): that one check does not apply here.
        case.call_and_validate(
            base_url=stack.url, excluded_checks=[schemathesis.checks.positive_data_acceptance]
        )

    check()
