"""An email backend that writes each message to its own ``.eml`` file (``make run``)."""

import logging
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings
from django.core.mail.backends.base import BaseEmailBackend

log = logging.getLogger(__name__)


class EmlFileBackend(BaseEmailBackend):
    """One RFC 5322 file per message in ``MAIL_DIR``, named so they sort by time.

    Written to a temporary name and renamed, so a reader never sees half a message.
    """

    def send_messages(self, email_messages) -> int:
        folder = Path(settings.MAIL_DIR)
        folder.mkdir(parents=True, exist_ok=True)
        sent = 0
        for message in email_messages:
            stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S-%f")
            path = folder / f"{stamp}-{uuid.uuid4().hex[:8]}.eml"
            temporary = path.with_suffix(".tmp")
            try:
                temporary.write_bytes(message.message().as_bytes(linesep="\r\n"))
                os.replace(temporary, path)
            except OSError:
                if not self.fail_silently:
                    raise
                continue
            log.info("email to %s written to %s", ", ".join(message.recipients()), path)
            sent += 1
        return sent
