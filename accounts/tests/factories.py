from datetime import date

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

PASSWORD = "correct-horse-battery"


class UserFactory(factory.django.DjangoModelFactory):
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
    date_of_birth = factory.LazyFunction(lambda: date(timezone.localdate().year - 15, 1, 1))
