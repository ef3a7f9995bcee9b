"""A generated client, as an app developer would use it (issue #22 item 4).

The test generates a Python client from the running server's ``/api/schema/`` with the pinned
openapi-python-client (into a temporary directory, never the repository), imports it, and
through that client only: two people sign up, one becomes a creator, the other buys coins
with a card (``pm_card_visa``, localstripe) and sends a gift with an ``Idempotency-Key``
(sent twice: one gift), then reads the creator's leaderboard, and the creator reads the
earnings. A schema that lies about a body, a status or a field breaks the generated code's
parsing here.
"""

from __future__ import annotations

import datetime
import importlib
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from gifts.tests.factories import GiftFactory

BIN = Path(sys.executable).parent
PACKAGE = "applause_generated_client"


@pytest.fixture
def generated(live_server, tmp_path):
    """The client package generated from the live schema, imported."""
    config = tmp_path / "generator.yaml"
    config.write_text("post_hooks: []\n")  # no formatting of code nobody reads
    subprocess.run(
        [
            str(BIN / "openapi-python-client"),
            "generate",
            "--url",
            f"{live_server.url}/api/schema/?format=json",
            "--meta",
            "none",
            "--config",
            str(config),
            "--output-path",
            str(tmp_path / PACKAGE),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    sys.path.insert(0, str(tmp_path))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


def _api(package, name: str):
    return importlib.import_module(f"{PACKAGE}.api.{package}.{name}")


def _models():
    return importlib.import_module(f"{PACKAGE}.models")


def _sign_up(client, username: str):
    register = _api("auth", "api_v1_auth_register_create")
    models = _models()
    answer = register.sync(
        client=client,
        body=models.RegisterInputRequest(
            username=username,
            email=f"{username}@example.com",
            password=f"{username}-Horse-Battery-42",
            date_of_birth=datetime.date(1990, 5, 17),
        ),
    )
    assert isinstance(answer, models.RegisterOutput), answer
    assert answer.user.username == username
    return answer.token


@pytest.mark.slow  # a generator or a server process: several seconds
def test_an_app_signs_up_buys_coins_gifts_and_reads_leaderboard_and_earnings(
    generated, live_server
):
    GiftFactory(slug="rose", name="Rose", coins=100)
    models = _models()
    anonymous = generated.Client(base_url=live_server.url, raise_on_unexpected_status=True)

    def signed_in(token: str):
        return generated.AuthenticatedClient(
            base_url=live_server.url, token=token, prefix="Token", raise_on_unexpected_status=True
        )

    fan = signed_in(_sign_up(anonymous, "clientfan"))
    star = signed_in(_sign_up(anonymous, "clientstar"))

    created = _api("creators", "api_v1_creators_create").sync(
        client=star,
        body=models.CreatorInputRequest(handle="clientstar", display_name="Client Star"),
    )
    assert isinstance(created, models.CreatorCreated), created
    assert created.handle == "clientstar"

    bought = _api("recharges", "api_v1_recharges_create").sync(
        client=fan,
        body=models.RechargeInputRequest(
            currency=models.CurrencyEnum.USD, coins=500, payment_method="pm_card_visa"
        ),
        idempotency_key=str(uuid.uuid4()),
    )
    assert isinstance(bought, models.RechargeCreateOutput), bought
    assert bought.status == models.RechargeStatusEnum.SUCCEEDED
    assert bought.coins == 500

    send = _api("gifts", "api_v1_gifts_send_create")
    gift = models.GiftSendInputRequest(creator="clientstar", gift="rose", quantity=2)
    key = str(uuid.uuid4())
    sent = send.sync(client=fan, body=gift, idempotency_key=key)
    again = send.sync(client=fan, body=gift, idempotency_key=key)  # a retry: the same gift
    assert isinstance(sent, models.GiftSendOutput), sent
    assert isinstance(again, models.GiftSendOutput), again
    assert (sent.coins_spent, sent.wallet.coins) == (200, 300)
    assert (again.id, again.wallet.coins) == (sent.id, 300)

    board = _api("creators", "api_v1_creators_leaderboard_retrieve").sync("clientstar", client=fan)
    assert isinstance(board, models.LeaderboardOutput), board
    assert [(row.username, row.coins) for row in board.results] == [("clientfan", 200)]

    earnings = _api("creators", "api_v1_creators_me_earnings_retrieve").sync(client=star)
    assert isinstance(earnings, models.Earnings), earnings
    assert earnings.diamonds_pending == sent.diamonds > 0
    assert earnings.diamonds_available == 0
