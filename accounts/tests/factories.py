from datetime import date

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from accounts.models import User

PASSWORD = "correct-horse-battery"


class UserFactory(factory.django.DjangoModelFactory[User]):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    date_of_birth = date(1990, 1, 1)
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @classmethod
    def _after_postgeneration(cls, instance, create, results=None):
        if create:
            instance.save(update_fields=["password"])


class MinorFactory(UserFactory):
    # A declaration where the parent has a plain date: factory_boy takes either.
    date_of_birth = factory.LazyFunction(  # type: ignore[assignment]
        lambda: date(timezone.localdate().year - 15, 1, 1)
    )
