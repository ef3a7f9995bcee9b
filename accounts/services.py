import hashlib
import logging
import uuid
from datetime import date

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.contrib.auth.tokens import default_token_generator
from django.core.cache import cache
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from knox.models import AuthToken

from accounts.mail import PASSWORD_RESET, VERIFY_EMAIL, account_mail_send
from accounts.models import User
from config.errors import DomainError, InvalidInput

log = logging.getLogger(__name__)


class UsernameTaken(DomainError):
    code = "username_taken"
    status = 409
    default_message = "That username is taken."

    def __init__(self, message: str | None = None):
        super().__init__(message, fields={"username": ["That username is taken."]})


@transaction.atomic
def user_register(*, username: str, email: str, password: str, date_of_birth: date):
    """Create a user (any age may sign up; buying and gifting check age later)."""
    today = timezone.localdate()
    if date_of_birth > today:
        raise InvalidInput(
            "Date of birth cannot be in the future.",
            fields={"date_of_birth": ["Date of birth cannot be in the future."]},
        )
    if date_of_birth.year < today.year - 130:
        raise InvalidInput(
            "Date of birth is not plausible.",
            fields={"date_of_birth": ["Date of birth is not plausible."]},
        )
    if User.objects.filter(username__iexact=username).exists():
        raise UsernameTaken()
    candidate = User(username=username, email=email, date_of_birth=date_of_birth)
    try:
        validate_password(password, user=candidate)
    except DjangoValidationError as exc:
        raise InvalidInput(exc.messages[0], fields={"password": exc.messages}) from exc
    candidate.set_password(password)
    try:
        with transaction.atomic():
            candidate.save()
    except IntegrityError as exc:
        raise UsernameTaken() from exc
    # The address check mail, queued in this transaction by the app that owns email.
    account_mail_send(kind=VERIFY_EMAIL, user=candidate)
    return candidate


def token_issue(*, user: "User") -> str:
    """A new API token for one device (sign-in); returns the key, shown this once.

    Only a SHA-512 digest is stored; the token expires after ``API_TOKEN_TTL_HOURS``.
    """
    _instance, key = AuthToken.objects.create(user=user)
    return key


def token_revoke(*, token: AuthToken) -> None:
    """Sign one device out: its token stops working at once."""
    AuthToken.objects.filter(pk=token.pk).delete()


def tokens_revoke_all(*, user: "User", keep: AuthToken | None = None) -> int:
    """Revoke every API token of ``user`` (all but ``keep``); returns how many."""
    tokens = AuthToken.objects.filter(user=user)
    if keep is not None:
        tokens = tokens.exclude(pk=keep.pk)
    deleted, _ = tokens.delete()
    return deleted


# --- Passwords: change and reset. Either one signs every other device out. --------------------


class WrongPassword(DomainError):
    code = "wrong_password"
    status = 400
    default_message = "The current password is not right."


def _password_check_new(user: "User", new_password: str) -> None:
    try:
        validate_password(new_password, user=user)
    except DjangoValidationError as exc:
        raise InvalidInput(exc.messages[0], fields={"new_password": exc.messages}) from exc


@transaction.atomic
def password_change(
    *, user: "User", old_password: str, new_password: str, keep_token: AuthToken | None = None
) -> int:
    """Set a new password after checking the current one; revokes every API token but
    ``keep_token`` (the caller's) and returns how many. Other sessions end by themselves: a
    session carries a hash of the password it was opened with."""
    if not user.check_password(old_password):
        raise WrongPassword(fields={"old_password": ["The current password is not right."]})
    _password_check_new(user, new_password)
    user.set_password(new_password)
    user.save(update_fields=["password"])
    return tokens_revoke_all(user=user, keep=keep_token)


@transaction.atomic
def password_reset_done(*, user: "User") -> int:
    """After a reset (the password is already saved): every API token goes."""
    return tokens_revoke_all(user=user)


def password_reset_users(*, email: str) -> list:
    """Active accounts with this address and a password (Django's reset form's rule)."""
    return [
        user
        for user in User.objects.filter(email__iexact=email.strip(), is_active=True)
        if user.has_usable_password()
    ]


def password_reset_mail_count_and_allow(*, email: str) -> bool:
    """Count a reset request for this address; False past ``PASSWORD_RESET_MAILS_PER_HOUR``.

    Counted whether or not the address has an account, so the answer reveals nothing."""
    key = "pwreset-mail:" + hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]
    cache.add(key, 0, timeout=3600)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=3600)
        count = 1
    return count <= settings.PASSWORD_RESET_MAILS_PER_HOUR


def password_reset_request(*, email: str, site_url: str) -> None:
    """Queue the reset mail for whoever owns ``email`` (maybe nobody): the same work and the
    same answer either way. A Celery task looks the address up after the commit and writes
    the mail to the email outbox, which sends it (retried until it goes, never twice)."""
    from accounts.tasks import password_reset_send_task

    if not password_reset_mail_count_and_allow(email=email):
        return
    # One id per request: a retried or duplicated task writes the same outbox row again.
    request_id = uuid.uuid4().hex

    def queue() -> None:
        try:
            password_reset_send_task.delay(email, site_url, request_id)
        except Exception:  # broker down: do it here rather than lose the mail
            log.warning("could not queue the password reset lookup; doing it in the request")
            password_reset_send(email=email, site_url=site_url, request_id=request_id)

    transaction.on_commit(queue)


@transaction.atomic
def password_reset_send(*, email: str, site_url: str, request_id: str) -> int:
    """Write a reset mail with a fresh link for each account with this address to the outbox
    (``account_mail_send``); returns how many. Run twice with one ``request_id``, it writes
    each mail once."""
    queued = 0
    for user in password_reset_users(email=email):
        uid = urlsafe_base64_encode(force_bytes(user.pk))
        token = default_token_generator.make_token(user)
        path = reverse("password_reset_confirm", kwargs={"uidb64": uid, "token": token})
        account_mail_send(
            kind=PASSWORD_RESET,
            user=user,
            reset_url=site_url.rstrip("/") + path,
            request_id=request_id,
        )
        queued += 1
    return queued


def idempotency_claim(*, user: "User", key: str, request_hash: str, path: str) -> None:
    """Inside the caller's transaction: the (user, key) record, unfinished (status 0), for a
    handler that commits in phases (``config.api.idempotent_phased``). A record already there
    for the same request is left as it is; for another request it is 409."""
    from accounts.models import IdempotencyRecord
    from config.errors import IdempotencyConflict

    record, _ = IdempotencyRecord.objects.get_or_create(
        user=user,
        key=key,
        defaults={
            "request_hash": request_hash,
            "path": path[:255],
            "response_status": 0,
            "response_body": {},
        },
    )
    if record.request_hash != request_hash:
        raise IdempotencyConflict()
