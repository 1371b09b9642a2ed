"""Dead letters: the record published for a command message that was rejected.

It says why (the rejection's reason and detail) and where the message came from, and holds the
message itself (an oversize one cut to its first bytes), so a sender can see what went wrong.
"""

from __future__ import annotations

import base64
import codecs
import json
from datetime import UTC, datetime

DEAD_LETTER_KEEP_BYTES = 4 * 1024
DEAD_LETTER_SCHEMA = "vigil.dead-letter/1"


def dead_letter_record(
    raw: bytes,
    reason: str,
    detail: str,
    *,
    topic: str,
    partition: int,
    offset: int,
    received_at: datetime,
    oversize_keep_bytes: int = DEAD_LETTER_KEEP_BYTES,
) -> bytes:
    """A JSON document that says why a message was rejected and holds the message.

    The message is kept as text when it is valid UTF-8, otherwise base64. An ``oversize``
    message is cut to its first ``oversize_keep_bytes`` bytes (``message.truncated`` says so;
    a UTF-8 character is never split); others are kept whole.

    Example::

        record = dead_letter_record(b"[1]", "not_an_object", "expected a JSON object, got an array",
                                    topic="vigil.commands", partition=0, offset=7, received_at=now)
        json.loads(record)["message"]
        # {'encoding': 'utf-8', 'size_bytes': 3, 'kept_bytes': 3, 'truncated': False, 'data': '[1]'}

    Args:
        raw: The message value as received.
        reason: The rejection's reason (one of :data:`~vigil.commands.processor.REJECTION_REASONS`).
        detail: The rejection's detail.
        topic: Where the message came from.
        partition: Its partition.
        offset: Its offset.
        received_at: When it was received (a naive time is taken as UTC).
        oversize_keep_bytes: How much of an oversize message to keep.

    Returns:
        The document, UTF-8 JSON.
    """
    kept = raw[:oversize_keep_bytes] if reason == "oversize" else raw
    truncated = len(kept) < len(raw)
    try:
        # Incremental: a multi-byte character cut by truncation is dropped, not an error.
        text = codecs.getincrementaldecoder("utf-8")().decode(kept, final=not truncated)
    except UnicodeDecodeError:
        encoding, data, kept_bytes = "base64", base64.b64encode(kept).decode("ascii"), len(kept)
    else:
        encoding, data, kept_bytes = "utf-8", text, len(text.encode("utf-8"))
    if received_at.tzinfo is None:
        received_at = received_at.replace(tzinfo=UTC)
    record = {
        "schema": DEAD_LETTER_SCHEMA,
        "reason": reason,
        "detail": detail,
        "source": {"topic": topic, "partition": partition, "offset": offset},
        "received_at": received_at.astimezone(UTC).isoformat(timespec="milliseconds"),
        "message": {
            "encoding": encoding,
            "size_bytes": len(raw),
            "kept_bytes": kept_bytes,
            "truncated": kept_bytes < len(raw),
            "data": data,
        },
    }
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
