"""This process's resident host memory (Linux /proc): what the sharded loader logs and the load bench compares.

The peak (VmHWM) covers the process's whole life; `reset_peak` starts it again from the present
(`/proc/self/clear_refs`), so a phase such as loading the model is measured on its own.
"""

import re
from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")
_RESET_PEAK_RSS = "5"  # proc(5): writing 5 to clear_refs resets the peak resident set size


def _status_bytes(field: str) -> int | None:
    try:
        match = re.search(rf"^{field}:\s+(\d+) kB$", _STATUS.read_text(), re.MULTILINE)
    except OSError:
        return None
    return int(match[1]) * 1024 if match else None


def resident_bytes() -> int | None:
    """Resident set size now (None where /proc is missing)."""
    return _status_bytes("VmRSS")


def peak_resident_bytes() -> int | None:
    """The highest resident set size since the process started or since the last `reset_peak`."""
    return _status_bytes("VmHWM")


def reset_peak() -> None:
    try:
        _CLEAR_REFS.write_text(_RESET_PEAK_RSS)
    except OSError:
        pass
