from django.contrib.auth import authenticate, logout, update_session_auth_hash
from drf_spectacular.utils import extend_schema
from knox.models import AuthToken
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import lockout
from accounts.services import (
    password_change,
    password_reset_request,
    token_issue,
    token_revoke,
    user_register,
)
from config.api import StrictInput, error_responses
from config.errors import DomainError
from config.throttles import (
    AuthIPThrottle,
    AuthUsernameThrottle,
    PasswordResetIPThrottle,
    SignupThrottle,
)


class RegisterInput(StrictInput):
    username = serializers.RegexField(r"^[\w.@+-]+\Z", max_length=150, min_length=3)
    email = serializers.EmailField(max_length=254)
    password = serializers.CharField(max_length=128, write_only=True)
    date_of_birth = serializers.DateField()


class UserOutput(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()


class RegisterOutput(serializers.Serializer):
    user = UserOutput()
    token = serializers.CharField()


class TokenInput(StrictInput):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=128)


class TokenOutput(serializers.Serializer):
    token = serializers.CharField()


class MeOutput(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    is_creator = serializers.BooleanField()
    creator_handle = serializers.CharField(allow_null=True)


class InvalidCredentials(DomainError):
    code = "invalid_credentials"
    status = 400
    default_message = "Unable to log in with these credentials."


class RegisterView(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []
    throttle_classes = [AuthIPThrottle, SignupThrottle]

    @extend_schema(
        request=RegisterInput,
        responses={201: RegisterOutput, **error_responses(400, {409: ["username_taken"]}, 429)},
        auth=[],
        summary="Sign up",
        description="Sign-ups per client address are limited (`THROTTLE_SIGNUP`, shared with "
        "the portal's sign-up page): past it, 429 `throttled` with Retry-After.",
    )
    def post(self, request):
        data = RegisterInput(data=request.data)
        data.is_valid(raise_exception=True)
        user = user_register(**data.validated_data)
        return Response(
            {"user": {"id": user.pk, "username": user.username}, "token": token_issue(user=user)},
            status=status.HTTP_201_CREATED,
        )


class TokenView(APIView):
    permission_classes = [AllowAny]

    def get_authenticators(self):
        # Logging in takes no credentials but the body; revoking needs the token itself.
        if self.request is None or self.request.method == "DELETE":
            return super().get_authenticators()
        return []

    def get_throttles(self):
        if self.request is not None and self.request.method == "POST":
            return [AuthIPThrottle(), AuthUsernameThrottle()]
        return []

    @extend_schema(
        request=TokenInput,
        responses={
            200: TokenOutput,
            **error_responses({400: ["invalid_credentials"], 429: ["account_locked"]}),
        },
        auth=[],
        summary="Get an API token",
        description="Repeated failed logins lock the username for a while: 429 `account_locked`.",
    )
    def post(self, request):
        data = TokenInput(data=request.data)
        data.is_valid(raise_exception=True)
        lockout.check_or_raise(data.validated_data["username"], request)
        user = authenticate(
            request,
            username=data.validated_data["username"],
            password=data.validated_data["password"],
        )
        if user is None or not user.is_active:
            raise InvalidCredentials()
        lockout.clear(data.validated_data["username"], request)
        return Response({"token": token_issue(user=user)})

    @extend_schema(
        request=None,
        responses={204: None, **error_responses(401)},
        summary="Revoke this token",
        description="Signs this device out: the token used for the call stops working. "
        "Tokens of other devices keep working.",
    )
    def delete(self, request):
        if not request.user.is_authenticated:
            self.permission_denied(request)
        if isinstance(request.auth, AuthToken):
            token_revoke(token=request.auth)
        else:
            logout(request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses={200: MeOutput, **error_responses(401)}, summary="Who am I")
    def get(self, request):
        user = request.user
        return Response(
            {
                "id": user.pk,
                "username": user.username,
                "is_creator": user.is_creator,
                "creator_handle": user.creator_handle,
            }
        )


class PasswordChangeInput(StrictInput):
    old_password = serializers.CharField(max_length=128, write_only=True)
    new_password = serializers.CharField(max_length=128, write_only=True)


class PasswordChangeOutput(serializers.Serializer):
    tokens_revoked = serializers.IntegerField(
        help_text="How many API tokens of other devices stopped working."
    )


class PasswordResetInput(StrictInput):
    email = serializers.EmailField(max_length=254)


class PasswordResetOutput(serializers.Serializer):
    detail = serializers.CharField()


class PasswordChangeView(APIView):
    permission_classes = [IsAuthenticated]
    throttle_classes = [AuthIPThrottle]

    @extend_schema(
        request=PasswordChangeInput,
        responses={
            200: PasswordChangeOutput,
            **error_responses({400: ["wrong_password"]}, 401, {429: ["account_locked"]}),
        },
        summary="Change my password",
        description="Needs the current password (`wrong_password` otherwise; wrong guesses "
        "count towards the login lockout, 429 `account_locked`). Every other API token and "
        "every other session stops working; the token (or session) making the call keeps "
        "working.",
    )
    def post(self, request):
        data = PasswordChangeInput(data=request.data)
        data.is_valid(raise_exception=True)
        user = request.user
        lockout.check_or_raise(user.get_username(), request)
        try:
            revoked = password_change(
                user=user,
                old_password=data.validated_data["old_password"],
                new_password=data.validated_data["new_password"],
                keep_token=request.auth if isinstance(request.auth, AuthToken) else None,
            )
        except DomainError as exc:
            if exc.code == "wrong_password":
                lockout.record_failure(user.get_username(), request)
            raise
        if request.auth is None:
            update_session_auth_hash(request, user)  # this session stays signed in
        return Response({"tokens_revoked": revoked})


class PasswordResetView(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []
    throttle_classes = [PasswordResetIPThrottle]

    @extend_schema(
        request=PasswordResetInput,
        responses={202: PasswordResetOutput, **error_responses(400, 429)},
        auth=[],
        summary="Mail a password reset link",
        description="Always 202, whether or not an account has this address. The mail links "
        "to the portal's reset page; the link works once, for `PASSWORD_RESET_TIMEOUT_MINUTES`. "
        "Setting a new password there signs out every device and session.",
    )
    def post(self, request):
        data = PasswordResetInput(data=request.data)
        data.is_valid(raise_exception=True)
        password_reset_request(
            email=data.validated_data["email"], site_url=request.build_absolute_uri("/")
        )
        return Response(
            {"detail": "If an account has this address, a reset link is on its way."},
            status=status.HTTP_202_ACCEPTED,
        )
