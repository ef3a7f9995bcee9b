from django.apps import AppConfig


class AccountsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "accounts"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save
        from knox.models import AuthToken

        from accounts import lockout  # noqa: F401  (connects the login-failure signal receivers)
        from accounts.auth import forget_token, forget_user_tokens
        from accounts.models import User

        # A revoked token or a changed user is never served from the token cache.
        post_delete.connect(forget_token, sender=AuthToken, dispatch_uid="forget_token")
        post_save.connect(forget_user_tokens, sender=User, dispatch_uid="forget_user_tokens")
