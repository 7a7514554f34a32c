from django.core.management.base import BaseCommand, CommandError

from inference.encryption import current_key, key_id
from inference.services.data_keys import datasets_reencrypt


class Command(BaseCommand):
    help = (
        "Re-encrypts every dataset under the current ALLIANCE_DATA_KEY. Rotation: set the new key as "
        "ALLIANCE_DATA_KEY and the previous one in ALLIANCE_DATA_KEYS_OLD on every process, run this, then drop "
        "the previous key. Idempotent."
    )

    def handle(self, *args: object, **options: object) -> None:
        report = datasets_reencrypt()
        self.stdout.write(
            f"data key {key_id(current_key())}: {report.reencrypted} dataset(s) re-encrypted, "
            f"{report.current} already under it, {len(report.missing)} without a file"
        )
        if report.missing:
            self.stderr.write(f"no file: {', '.join(report.missing)}")
        if report.unreadable:
            raise CommandError(
                f"{len(report.unreadable)} dataset(s) could not be decrypted with the configured keys (add their key "
                f"to ALLIANCE_DATA_KEYS_OLD and run again): {', '.join(report.unreadable)}"
            )
