"""What every channel's payload translation needs to make outside input encodable.

JSON may carry lone surrogates (`"\\ud800"`), which UTF-8 (and so Avro) cannot encode:
`clean` replaces them. An Avro `timestamp-millis` decodes to a datetime, which ends with the
year 9999: `epoch_seconds` refuses anything past it (or before 1970), so nothing the
consumers cannot decode is ever produced.
"""

from __future__ import annotations

import re
from typing import Any

_SURROGATE = re.compile("[\ud800-\udfff]")
#: 9999-12-31T23:59:59Z: the last second a timestamp-millis field decodes.
MAX_EPOCH_S = 253_402_300_799


def clean(text: str) -> str:
    """`text` with lone surrogates replaced by U+FFFD."""
    return _SURROGATE.sub("\ufffd", text)


def epoch_seconds(value: Any) -> int | None:
    """`value` if it is Unix seconds a timestamp-millis field can carry, else None."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_EPOCH_S:
        return value
    return None
