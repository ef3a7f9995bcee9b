from datetime import date

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from knox.models import AuthToken

from config.errors import InvalidInput

User = get_user_model()


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
        raise InvalidInput(
            "That username is taken.", fields={"username": ["That username is taken."]}
        )
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
        raise InvalidInput(
            "That username is taken.", fields={"username": ["That username is taken."]}
        ) from exc
    from notifications.services import email_verification_send  # sits beside accounts

    email_verification_send(user=candidate)
    return candidate


def token_issue(*, user) -> str:
    """A new API token for one device (sign-in); returns the key, shown this once.

    Only a SHA-512 digest is stored; the token expires after ``API_TOKEN_TTL_HOURS``.
    """
    _instance, key = AuthToken.objects.create(user=user)
    return key


def token_revoke(*, token: AuthToken) -> None:
    """Sign one device out: its token stops working at once."""
    AuthToken.objects.filter(pk=token.pk).delete()


def tokens_revoke_all(*, user, keep: AuthToken | None = None) -> int:
    """Revoke every API token of ``user`` (all but ``keep``); returns how many."""
    tokens = AuthToken.objects.filter(user=user)
    if keep is not None:
        tokens = tokens.exclude(pk=keep.pk)
    deleted, _ = tokens.delete()
    return deleted
