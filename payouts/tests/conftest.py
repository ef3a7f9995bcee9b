import pytest

from config.celery import app as celery_app
from payouts.tests.connect_fake import ConnectFake


@pytest.fixture
def connect_fake(settings):
    """The Stripe Connect test double, with payouts' Stripe client pointed at it."""
    fake = ConnectFake().start()
    settings.STRIPE_CONNECT_API_BASE = fake.url
    yield fake
    fake.stop()


@pytest.fixture
def eager_celery():
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous
