"""Root-only JSON files written atomically (data and statistics dumps in the run dir).

Written to a temporary name with mode 0600 and renamed into place, so a reader never sees half a file
and no other user can read what the daemon dumps.
"""

from __future__ import annotations

import json
import os
from typing import Any


def write_json(path: str, data: Any) -> None:
    tmp = f"{path}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True, default=str)
        f.write("\n")
    os.replace(tmp, path)
