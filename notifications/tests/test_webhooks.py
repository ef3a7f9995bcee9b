"""App webhooks against a real HTTP receiver on loopback."""

import hashlib
import hmac
import json
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.db import transaction
from django.utils import timezone

from creators.services import creator_create
from notifications.models import (
    DeliveryStatus,
    OutboxEmail,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from notifications.tests.factories import verified_user
from notifications.webhooks import webhook_endpoint_flush, webhook_event_emit, webhook_flush_all
from tests.helpers import client_for

pytestmark = pytest.mark.django_db


def verify(secret: str, body: bytes, header: str, tolerance: int = 300) -> bool:
    """The receiver's check, as the docs show it."""
    parts = dict(item.split("=", 1) for item in header.split(","))
    signed = parts["t"].encode() + b"." + body
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    fresh = abs(time.time() - int(parts["t"])) <= tolerance
    return fresh and hmac.compare_digest(expected, parts["v1"])


class Receiver:
    """An HTTP server on 127.0.0.1 that records POSTs and answers from a script."""

    def __init__(self):
        self.requests: list[tuple[dict, bytes]] = []
        self.statuses: list[int] = []
        self.delay = 0.0
        # Set when a request arrives; a test clears ``release`` to hold the answer back.
        self.arrived = threading.Event()
        self.release = threading.Event()
        self.release.set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), body))
                receiver.arrived.set()
                receiver.release.wait(30)
                time.sleep(receiver.delay)
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/applause"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def bodies(self) -> list[dict]:
        return [json.loads(body) for _headers, body in self.requests]


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.server.shutdown()
    server.server.server_close()


@pytest.fixture
def creator_user():
    user = verified_user()
    creator_create(user=user, handle=f"hooked{user.pk}", display_name="Hooked")
    return user


def subscribe(user, url, events=("payout.*", "gift.received")) -> dict:
    response = client_for(user).post(
        "/api/v1/webhooks/endpoints/", {"url": url, "events": list(events)}, format="json"
    )
    assert response.status_code == 201, response.json()
    return response.json()


def emit(user, n: int, type="payout.paid"):
    with transaction.atomic():
        return webhook_event_emit(user_id=user.pk, type=type, key=f"test:{n}", data={"n": n})


def test_create_list_delete_and_the_secret_shown_once(creator_user, user, receiver):
    created = subscribe(creator_user, receiver.url)
    assert created["secret"].startswith("whsec_")
    assert created["enabled"] is True
    assert created["events"] == ["payout.*", "gift.received"]
    api = client_for(creator_user)
    listed = api.get("/api/v1/webhooks/endpoints/").json()["results"]
    assert [e["id"] for e in listed] == [created["id"]]
    assert "secret" not in listed[0]
    # Someone else's endpoint does not exist for them.
    other = client_for(user)
    assert other.delete(f"/api/v1/webhooks/endpoints/{created['id']}/").status_code == 404
    assert other.get("/api/v1/webhooks/endpoints/").json()["results"] == []
    assert api.delete(f"/api/v1/webhooks/endpoints/{created['id']}/").status_code == 204
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"url": "http://x.example/", "events": ["nope.event"]}, "validation_error"),
        ({"url": "http://x.example/", "events": []}, "validation_error"),
        ({"url": "not a url", "events": ["payout.*"]}, "validation_error"),
        ({"url": "ftp://127.0.0.1/", "events": ["payout.*"]}, "webhook_url_refused"),
        ({"url": "http://no-such-host.invalid/", "events": ["payout.*"]}, "webhook_url_refused"),
    ],
)
def test_bad_input_is_a_clear_400(creator_user, body, code):
    response = client_for(creator_user).post("/api/v1/webhooks/endpoints/", body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code
    assert not WebhookEndpoint.objects.exists()


def test_viewers_have_no_endpoints(user_api):
    response = user_api.post(
        "/api/v1/webhooks/endpoints/",
        {"url": "https://example.com/hook", "events": ["payout.*"]},
        format="json",
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "not_a_creator"


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://localhost/hook",
        "https://10.1.2.3/hook",
        "https://192.168.0.10/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "http://93.184.216.34/hook",  # public, but not https
    ],
)
def test_production_refuses_private_addresses_and_plain_http(creator_user, settings, url):
    settings.WEBHOOK_ALLOW_PRIVATE = False
    response = client_for(creator_user).post(
        "/api/v1/webhooks/endpoints/", {"url": url, "events": ["payout.*"]}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "webhook_url_refused"


def test_a_name_that_resolves_to_loopback_later_is_refused_at_delivery(
    creator_user, receiver, settings
):
    subscribe(creator_user, receiver.url)
    emit(creator_user, 1)
    settings.WEBHOOK_ALLOW_PRIVATE = False  # the check runs again on every delivery
    webhook_flush_all()
    assert receiver.requests == []
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == DeliveryStatus.PENDING
    assert "https" in delivery.last_error


def test_delivery_is_signed_and_a_forged_signature_fails(
    creator_user, receiver, eager_celery, django_capture_on_commit_callbacks
):
    secret = subscribe(creator_user, receiver.url)["secret"]
    with django_capture_on_commit_callbacks(execute=True):
        event = emit(creator_user, 1)
    ((headers, body),) = receiver.requests
    assert headers["Content-Type"] == "application/json"
    assert verify(secret, body, headers["Applause-Signature"])
    payload = json.loads(body)
    assert payload == {
        "id": event.public_id,
        "type": "payout.paid",
        "created": int(event.created_at.timestamp()),
        "data": {"n": 1},
    }
    assert not verify(secret, body.replace(b'"n":1', b'"n":2'), headers["Applause-Signature"])
    assert not verify("whsec_wrong", body, headers["Applause-Signature"])
    stale = headers["Applause-Signature"].replace("t=", "t=1")
    assert not verify(secret, body, stale)
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == DeliveryStatus.DELIVERED
    assert delivery.last_status_code == 200


def test_500_then_200_is_retried_in_order(creator_user, receiver):
    subscribe(creator_user, receiver.url)
    receiver.statuses = [500]
    emit(creator_user, 1)
    emit(creator_user, 2)
    webhook_flush_all()
    first, second = WebhookDelivery.objects.order_by("id")
    first.refresh_from_db()
    assert first.status == DeliveryStatus.PENDING
    assert first.last_error == "HTTP 500"
    assert first.next_attempt_at > timezone.now() + timedelta(seconds=50)
    assert second.status == DeliveryStatus.PENDING
    assert second.attempts == 0
    assert WebhookEndpoint.objects.get().failing_since is not None

    WebhookDelivery.objects.filter(pk=first.pk).update(next_attempt_at=timezone.now())
    assert webhook_flush_all() == 2
    assert [b["data"]["n"] for b in receiver.bodies()] == [1, 1, 2]
    assert WebhookEndpoint.objects.get().failing_since is None
    assert webhook_flush_all() == 0  # nothing twice


def test_slow_receiver_times_out_and_is_retried(creator_user, receiver, settings):
    settings.WEBHOOK_TIMEOUT = 0.3
    subscribe(creator_user, receiver.url)
    receiver.delay = 1.0
    emit(creator_user, 1)
    webhook_flush_all()
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == DeliveryStatus.PENDING
    assert "timed out" in delivery.last_error


def test_failing_for_the_retry_window_disables_and_emails_then_replay_revives(
    creator_user, receiver, settings
):
    endpoint_id = subscribe(creator_user, receiver.url)["id"]
    emit(creator_user, 1)
    long_ago = timezone.now() - timedelta(hours=settings.WEBHOOK_RETRY_HOURS + 1)
    WebhookEndpoint.objects.update(failing_since=long_ago)
    WebhookDelivery.objects.update(created_at=long_ago)
    receiver.statuses = [503]
    webhook_endpoint_flush(endpoint_id=endpoint_id)
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.enabled is False
    assert "failing since" in endpoint.disabled_reason
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == DeliveryStatus.FAILED
    mail = OutboxEmail.objects.get(template="webhook_disabled")
    assert receiver.url in mail.body_text
    assert mail.user == creator_user
    assert emit(creator_user, 2) is None  # a disabled endpoint gets nothing new

    api = client_for(creator_user)
    log = api.get(f"/api/v1/webhooks/endpoints/{endpoint_id}/deliveries/").json()["results"]
    assert [(d["status"], d["last_status_code"]) for d in log] == [("failed", 503)]
    replay = api.post(f"/api/v1/webhooks/endpoints/{endpoint_id}/deliveries/{log[0]['id']}/replay/")
    assert replay.status_code == 202
    webhook_flush_all()
    assert WebhookEndpoint.objects.get().enabled is True
    assert WebhookDelivery.objects.get().status == DeliveryStatus.DELIVERED
    assert (
        client_for(verified_user())
        .post(f"/api/v1/webhooks/endpoints/{endpoint_id}/deliveries/{log[0]['id']}/replay/")
        .status_code
        == 404
    )


# --- gift.received: the same event from both gift paths (issue #20) -------------------------


@pytest.fixture
def fan():
    from accounts.tests.factories import UserFactory
    from gifts.tests.factories import GiftFactory, fund

    GiftFactory(slug="rose", coins=10)
    return fund(UserFactory(), 1000)


def gift(fan, creator_user, client_key="k1", **extra):
    from gifts.services import gift_send

    args = {"creator_handle": creator_user.creator.handle, "gift_slug": "rose", "quantity": 3}
    return gift_send(sender=fan, client_key=client_key, **{**args, **extra})


@pytest.mark.usefixtures("gift_path")
def test_gift_received_is_delivered_signed_with_one_body_shape(
    creator_user, fan, receiver, eager_celery, django_capture_on_commit_callbacks
):
    secret = subscribe(creator_user, receiver.url, events=["gift.*"])["secret"]
    exact = subscribe(creator_user, receiver.url, events=["gift.received"])["secret"]
    subscribe(creator_user, receiver.url, events=["payout.*", "goal.*"])  # wants no gifts
    with django_capture_on_commit_callbacks(execute=True):
        sent = gift(fan, creator_user, live_id="live-7", message="gg <b>wp</b>")
    event = WebhookEvent.objects.get()
    assert (event.key, event.owner_id, event.type) == (
        f"gift.received:{sent.pk}",
        creator_user.pk,
        "gift.received",
    )
    assert len(event.public_id) == len("evt_") + 24
    assert event.public_id.startswith("evt_")
    assert len(receiver.requests) == 2  # one per endpoint that wants gifts
    for (headers, body), endpoint_secret in zip(receiver.requests, [secret, exact], strict=True):
        assert verify(endpoint_secret, body, headers["Applause-Signature"])
        assert json.loads(body) == {
            "id": event.public_id,
            "type": "gift.received",
            "created": int(event.created_at.timestamp()),
            "data": {
                "id": sent.pk,
                "sender": fan.username,
                "gift": "rose",
                "quantity": 3,
                "coins": 30,
                "diamonds": 30,
                "live_id": "live-7",
                "video_id": "",
                "message": "gg wp",
                "goal": None,
            },
        }
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {"delivered"}


@pytest.mark.usefixtures("gift_path")
def test_a_replayed_gift_emits_nothing_again(creator_user, fan, receiver):
    subscribe(creator_user, receiver.url, events=["gift.received"])
    api = client_for(fan)
    body = {"creator": creator_user.creator.handle, "gift": "rose", "quantity": 2}
    headers = {"HTTP_IDEMPOTENCY_KEY": "same-key"}
    first = api.post("/api/v1/gifts/send/", body, format="json", **headers)
    again = api.post("/api/v1/gifts/send/", body, format="json", **headers)
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    by_service = gift(fan, creator_user, client_key="svc")
    assert gift(fan, creator_user, client_key="svc").created is False
    assert sorted(WebhookEvent.objects.values_list("key", flat=True)) == sorted(
        [f"gift.received:{first.json()['id']}", f"gift.received:{by_service.pk}"]
    )
    assert WebhookDelivery.objects.count() == 2


@pytest.mark.usefixtures("gift_path")
def test_no_subscribed_endpoint_no_event(creator_user, fan, receiver):
    from notifications.tests.factories import verified_user

    subscribe(creator_user, receiver.url, events=["payout.*"])
    disabled = subscribe(creator_user, receiver.url, events=["gift.*"])
    WebhookEndpoint.objects.filter(pk=disabled["id"]).update(enabled=False)
    deleted = subscribe(creator_user, receiver.url, events=["gift.received"])
    client_for(creator_user).delete(f"/api/v1/webhooks/endpoints/{deleted['id']}/")
    other = verified_user()
    creator_create(user=other, handle=f"other{other.pk}", display_name="Other")
    subscribe(other, receiver.url, events=["gift.*"])  # another creator's app
    gift(fan, creator_user)
    assert not WebhookEvent.objects.exists()
    assert not WebhookDelivery.objects.exists()


def test_the_sql_gift_with_a_subscriber_is_still_one_round_trip(
    creator_user, fan, receiver, settings
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    if connection.vendor != "postgresql":
        pytest.skip("the SQL gift function needs PostgreSQL")
    settings.GIFT_SEND_SQL = True
    endpoint_id = subscribe(creator_user, receiver.url, events=["gift.*"])["id"]
    gift(fan, creator_user, client_key="warm")  # the platform accounts exist from here on
    with CaptureQueriesContext(connection) as queries:
        sent = gift(fan, creator_user, client_key="measured")
    assert [q["sql"][:20] for q in queries] == ["SELECT gift_send_v4("], queries
    delivery = WebhookDelivery.objects.get(event__key=f"gift.received:{sent.pk}")
    assert (delivery.endpoint_id, delivery.status) == (endpoint_id, DeliveryStatus.PENDING)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("gift_path")
def test_a_delivery_on_the_wire_never_holds_up_a_gift(creator_user, fan, receiver):
    """The flush locks the endpoint while its request is out; a gift to that creator inserts
    a delivery (a key-share lock through the foreign key) and must not wait for it."""
    from django.db import connection

    endpoint_id = subscribe(creator_user, receiver.url, events=["gift.*", "payout.*"])["id"]
    emit(creator_user, 1)
    receiver.release.clear()
    flusher = threading.Thread(
        target=lambda: (webhook_endpoint_flush(endpoint_id=endpoint_id), connection.close())
    )
    flusher.start()
    try:
        assert receiver.arrived.wait(10)  # the delivery is on the wire, the endpoint locked
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '2s'")  # a blocked gift fails instead of waiting
        try:
            sent = gift(fan, creator_user)
        finally:
            with connection.cursor() as cursor:
                cursor.execute("RESET lock_timeout")
    finally:
        receiver.release.set()
        flusher.join(10)
    # The gift committed while the first delivery was out: the same flush delivered it next.
    assert [b["type"] for b in receiver.bodies()] == ["payout.paid", "gift.received"]
    assert receiver.bodies()[1]["data"]["id"] == sent.pk


@pytest.mark.usefixtures("gift_path")
def test_a_burst_of_gifts_queues_one_flush_per_endpoint(
    creator_user, fan, receiver, monkeypatch, django_capture_on_commit_callbacks
):
    from notifications import tasks

    queued: list[int] = []
    monkeypatch.setattr(tasks.webhook_endpoint_flush_task, "delay", queued.append)
    endpoint_id = subscribe(creator_user, receiver.url, events=["gift.*"])["id"]
    for n in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            gift(fan, creator_user, client_key=f"burst-{n}")
    assert queued == [endpoint_id]  # the first queued task will see all three
    tasks.webhook_endpoint_flush_task(endpoint_id)  # the worker runs it: all three delivered
    assert [b["data"]["quantity"] for b in receiver.bodies()] == [3, 3, 3]
    with django_capture_on_commit_callbacks(execute=True):
        gift(fan, creator_user, client_key="after")
    assert queued == [endpoint_id, endpoint_id]  # after it started, a new gift queues again
