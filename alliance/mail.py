"""Where the platform's email goes, in words (for `up` and the operators)."""

from __future__ import annotations

from django.conf import settings


def mail_destination() -> str:
    backend = settings.EMAIL_BACKEND
    if backend == "django.core.mail.backends.filebased.EmailBackend":
        return f"Email (applications, invitations, password resets) is written as files to {settings.EMAIL_FILE_PATH}"
    if backend == "django.core.mail.backends.smtp.EmailBackend":
        return f"Email is sent by SMTP through {settings.EMAIL_HOST}:{settings.EMAIL_PORT}"
    if backend == "django.core.mail.backends.console.EmailBackend":
        return "Email is printed on this console"
    return f"Email goes through {backend}"
