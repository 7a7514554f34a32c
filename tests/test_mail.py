"""Where email goes in each mode, as `up` prints it: files under var/mail by default when embedded, SMTP otherwise."""

from __future__ import annotations

from pathlib import Path

from django.core import mail

from alliance.mail import mail_destination


def test_the_file_backend_names_its_folder_and_really_writes_there(settings, tmp_path):
    settings.EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    settings.EMAIL_FILE_PATH = tmp_path / "mail"
    assert mail_destination().endswith(f"written as files to {tmp_path / 'mail'}")
    mail.send_mail("Hello", "A body.", None, ["someone@example.com"])
    written = list(Path(tmp_path / "mail").iterdir())
    assert len(written) == 1 and "someone@example.com" in written[0].read_text()


def test_smtp_names_its_server(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "mail.alliance.example", 587
    assert mail_destination() == "Email is sent by SMTP through mail.alliance.example:587"
