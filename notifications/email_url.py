"""``EMAIL_URL`` → Django's email settings (imported by config/settings.py, so no Django here).

    smtp://user:pass@host:587/?tls=1     STARTTLS (``smtp+tls://`` too)
    smtps://user:pass@host:465/          implicit TLS (``?ssl=1`` on smtp:// too)
    file:///path/to/dir                  one .eml file per message in that folder
    console://                           printed to the console
    memory://                            Django's in-memory outbox (tests)

``?timeout=`` (seconds) overrides ``EMAIL_TIMEOUT``. User and password are URL-decoded, so a
password with ``@`` or ``/`` is written ``%40`` / ``%2F``.
"""

from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

_TRUE = {"1", "true", "yes", "on"}


def email_url_settings(url: str, *, mail_dir: Path) -> dict:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    if scheme == "file":
        return {
            "EMAIL_BACKEND": "notifications.backends.EmlFileBackend",
            "MAIL_DIR": Path(unquote(parts.path)) if parts.path else mail_dir,
        }
    if scheme == "console":
        return {"EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend"}
    if scheme in ("memory", "locmem"):
        return {"EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend"}
    if scheme not in ("smtp", "smtps", "smtp+tls", "smtp+ssl"):
        raise ValueError(f"EMAIL_URL: unknown scheme {scheme!r} (smtp, smtps, file, console)")
    use_ssl = scheme in ("smtps", "smtp+ssl") or query.get("ssl", "").lower() in _TRUE
    use_tls = not use_ssl and (scheme == "smtp+tls" or query.get("tls", "").lower() in _TRUE)
    config = {
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": parts.hostname or "localhost",
        "EMAIL_PORT": parts.port or (465 if use_ssl else 587 if use_tls else 25),
        "EMAIL_HOST_USER": unquote(parts.username or ""),
        "EMAIL_HOST_PASSWORD": unquote(parts.password or ""),
        "EMAIL_USE_TLS": use_tls,
        "EMAIL_USE_SSL": use_ssl,
    }
    if "timeout" in query:
        config["EMAIL_TIMEOUT"] = int(query["timeout"])
    return config
