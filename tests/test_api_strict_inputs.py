"""Request bodies keep their JSON types (config.api.StrictInput), in every app (#22).

The outside fuzz run (tests/test_api_outside_fuzz.py) found two apps whose bodies took `0` for
`false` and `"5"` for `5`, which the schema calls invalid: each API module's input serializers
must be StrictInput, and the two found answer 400 and change nothing.
"""

import importlib
import inspect
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator
from rest_framework import serializers

from accounts.tests.factories import UserFactory
from config.api import StrictInput
from gifts.models import Goal
from gifts.services import QUANTITY_MAX
from gifts.tests.factories import make_creator
from moderation.models import CreatorModeration
from tests.helpers import client_for

REPO = Path(__file__).resolve().parent.parent
APPS = ["accounts", "wallets", "creators", "gifts", "payouts", "memberships", "moderation"]
APPS += ["notifications", "staff"]


def _api_modules():
    """Each app's API modules: ``api.py``, ``*_api.py``, and the modules of an ``api/``
    package."""
    for app in APPS:
        for path in sorted((REPO / app).glob("*api.py")):
            yield importlib.import_module(f"{app}.{path.stem}")
        for path in sorted((REPO / app).glob("api/*.py")):
            yield importlib.import_module(f"{app}.api.{path.stem}".removesuffix(".__init__"))


def test_every_api_input_serializer_is_strict():
    loose = [
        f"{module.__name__}.{name}"
        for module in _api_modules()
        for name, cls in inspect.getmembers(module, inspect.isclass)
        if cls.__module__ == module.__name__
        and name.endswith("Input")
        and issubclass(cls, serializers.Serializer)
        and not issubclass(cls, StrictInput)
    ]
    assert {m.__name__ for m in _api_modules()} >= {"wallets.api.recharges", "gifts.goals_api"}
    assert loose == []


@pytest.mark.django_db
def test_moderation_settings_take_a_boolean_not_a_number():
    creator = make_creator("strict")
    api = client_for(creator.user)

    answer = api.patch("/api/v1/creators/me/moderation/", {"hold_messages": 0}, format="json")

    assert answer.status_code == 400
    assert answer.json()["error"]["fields"]["hold_messages"] == ["Must be true or false."]
    assert not CreatorModeration.objects.filter(creator=creator, hold_messages=True).exists()


@pytest.mark.django_db
def test_a_goal_takes_a_number_of_coins_not_text_and_a_live_id_of_its_pattern():
    creator = make_creator("goalie")
    api = client_for(creator.user)
    deadline = (timezone.now() + timedelta(days=1)).isoformat()
    goal = {"title": "New mic", "target_coins": 500, "deadline": deadline}

    as_text = api.post("/api/v1/creators/me/goals/", {**goal, "target_coins": "500"})
    bad_live = api.post("/api/v1/creators/me/goals/", {**goal, "live_id": "a b"})
    good = api.post("/api/v1/creators/me/goals/", {**goal, "live_id": "live-1"})

    assert as_text.status_code == 400
    assert as_text.json()["error"]["fields"]["target_coins"] == ["Must be a whole number."]
    assert bad_live.status_code == 400
    assert "live_id" in bad_live.json()["error"]["fields"]
    assert good.status_code == 201, good.content
    assert list(Goal.objects.filter(creator=creator).values_list("live_id", flat=True)) == [
        "live-1"
    ]


def test_the_quote_states_the_quantity_range_it_checks():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    parameters = schema["paths"]["/api/v1/gifts/quote/"]["get"]["parameters"]

    (quantity,) = [p for p in parameters if p["name"] == "quantity"]

    assert quantity["schema"]["minimum"] == 1
    assert quantity["schema"]["maximum"] == QUANTITY_MAX


@pytest.mark.django_db
def test_text_that_is_only_whitespace_is_invalid_by_the_schema_as_by_the_server():
    # The outside fuzz run's stateful phase sent display_name "\f": valid by the schema
    # (minLength 1), refused by the server (trimmed, then blank).
    schema = SchemaGenerator().get_schema(request=None, public=True)
    creator_input = schema["components"]["schemas"]["CreatorInputRequest"]["properties"]
    assert creator_input["display_name"]["pattern"] == r"\S"
    assert creator_input["handle"]["pattern"].startswith("^[a-zA-Z0-9]")  # its own stays
    register = schema["components"]["schemas"]["RegisterInputRequest"]["properties"]
    assert register["username"]["pattern"] == r"^[\w.@+-]+$"
    api = client_for(UserFactory())

    answer = api.post("/api/v1/creators/", {"handle": "blank-name", "display_name": "\f"})

    assert answer.status_code == 400
    assert "display_name" in answer.json()["error"]["fields"]
