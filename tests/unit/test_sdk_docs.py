"""docs/user-guide.md lists exactly the supported models, with their limits, and every SDK function."""

import re
from pathlib import Path

from kubetune import foundation_model as fm
from kubetune.api.supported_models import SUPPORTED_MODELS
from kubetune.sdk.events import EventType
from kubetune.sdk.status import RunStatus

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "user-guide.md"


def test_models_table_matches_supported_models():
    text = GUIDE.read_text()
    table = text[text.index("<!-- supported-models:begin"): text.index("<!-- supported-models:end")]
    rows = re.findall(r"^\| `([^`]+)` \| (\w+) \| (\d+) \| (\d+) \| ([0-9.e-]+) \| (yes|no) \|$", table, re.M)
    expected = [
        (m.name, m.family, str(m.max_context_length), str(m.default_context_length), f"{m.default_learning_rate:g}",
         "yes" if m.accepts_system_role else "no")
        for m in SUPPORTED_MODELS.values()
    ]
    assert rows == expected


def test_guide_covers_the_sdk_statuses_and_events():
    text = GUIDE.read_text()
    for function in ("create", "get", "list", "cancel", "delete", "get_events", "get_checkpoints", "get_models", "configure", "follow"):
        assert f"fm.{function}(" in text, function
        assert callable(getattr(fm, function))
    for name in [s.value for s in RunStatus] + [e.value for e in EventType]:
        assert f"`{name}`" in text, name
