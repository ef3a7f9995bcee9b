"""Issue 21 item 12: every /api/ path answers the documented JSON error, also under DEBUG."""

import pytest
from django.test import Client


@pytest.mark.django_db
@pytest.mark.parametrize("debug", [True, False])
@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/nothing-here/",
        "/api/v1/recharges/not-a-number/",
        "/api/v1/payouts/abc/statement/",
        "/api/v1/payouts/trace/abc/",
        "/api/v1/recharges/abc/refund/",
        "/api/nothing/",
    ],
)
def test_unknown_api_paths_answer_json_404(client, settings, debug, path):
    settings.DEBUG = debug
    response = client.get(path)
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["error"]["code"] == "not_found"
    assert len(response.content) < 500


@pytest.mark.django_db
def test_a_missing_trailing_slash_is_named_and_a_post_is_not_a_500(client, settings):
    settings.DEBUG = True
    client = Client(enforce_csrf_checks=True)
    response = client.post("/api/v1/gifts/send", {}, content_type="application/json")
    assert response.status_code == 404
    assert "/api/v1/gifts/send/" in response.json()["error"]["message"]


@pytest.mark.django_db
def test_portal_pages_keep_their_html_404(client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


@pytest.mark.django_db
def test_an_unmatched_post_is_a_404_not_a_csrf_403():
    client = Client(enforce_csrf_checks=True)
    response = client.post("/api/v1/recharges/null,null/refund/", {})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.django_db
def test_favicon_ico_is_never_a_404(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 301
    assert response["Location"] == "/static/img/favicon.svg"


def test_a_client_error_is_logged_once_by_the_access_log_only():
    import logging

    # django.request would repeat every 4xx that config.middleware already logged.
    assert logging.getLogger("django.request").getEffectiveLevel() == logging.ERROR
    assert logging.getLogger("applause.request").isEnabledFor(logging.INFO)
