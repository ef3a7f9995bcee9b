from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "notifications"
    verbose_name = "Email and app webhooks"

    def ready(self) -> None:
        from accounts.mail import PASSWORD_RESET, VERIFY_EMAIL, account_mail_register
        from notifications.services import email_verification_send, password_reset_mail_enqueue

        # accounts imports no app above it: it asks for its mail through this registry.
        account_mail_register(kind=VERIFY_EMAIL, sender=email_verification_send)
        account_mail_register(kind=PASSWORD_RESET, sender=password_reset_mail_enqueue)
