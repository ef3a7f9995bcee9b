"""Issue 21: what a newcomer met on the wallet's portal pages."""

import pytest


@pytest.mark.django_db
def test_limits_page_shows_saved_only_after_the_save_that_just_happened(user, client):
    client.force_login(user)
    good = client.post("/wallet/limits/", {"daily_limit": "500"}, follow=True)
    page = good.content.decode()
    assert "Your limits are saved." in page
    assert 'role="alert"' not in page

    bad = client.post("/wallet/limits/", {"daily_limit": "lots"})
    page = bad.content.decode()
    assert "must be a whole number" in page
    assert "Your limits are saved." not in page

    # A reload after the save does not repeat the flash either.
    again = client.get("/wallet/limits/").content.decode()
    assert "Your limits are saved." not in again


@pytest.mark.django_db
def test_limits_page_ignores_a_saved_flag_in_the_url(user, client):
    client.force_login(user)
    page = client.get("/wallet/limits/?saved=1").content.decode()
    assert "Your limits are saved." not in page
