"""schemathesis against our own OpenAPI schema, in-process, with a real token and real data.

Every generated request must get an answer that the schema documents (status, content type,
body), and never a 5xx.
"""

import json

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings
from knox.models import AuthToken
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from accounts.tests.factories import UserFactory
from wallets.services import wallet_adjust

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def _load_schema():
    # The schema as /api/schema/ serves it, generated in-process (no database needed).
    generator = SchemaGenerator()
    document = json.loads(json.dumps(generator.get_schema(request=None, public=True), default=str))
    loaded = schemathesis.openapi.from_dict(document)
    loaded.app = get_wsgi_application()
    return loaded


schema = _load_schema()


@pytest.fixture(autouse=True)
def _keep_test_connection():
    # Like Django's test client: keep the test's connection (and transaction) across requests.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def fuzz_token(db):
    user = UserFactory(username="fuzzer")
    wallet_adjust(user=user, coins=1_000_000, reason="fuzzing", actor=None)
    return AuthToken.objects.create(user=user)[1]


@pytest.mark.slow
@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_every_operation_answers_as_documented(case, fuzz_token, db):
    if case.path == "/api/v1/webhooks/stripe/":
        return  # signature-checked; its own tests cover forged and malformed events
    if case.path == "/api/v1/creators/{handle}/live/{live_id}/events/":
        return  # a Server-Sent Events stream never ends by itself; gifts/tests/test_live.py
    headers = {"Authorization": f"Token {fuzz_token}"}
    case.call_and_validate(headers=headers, checks=CHECKS)
