"""The per-request state bus. Topic values are JSON.

A component sees only the topics it declared in ``Metadata.subscribes`` and may
publish only those in ``Metadata.publishes``: the host enforces both.
"""

import json
from typing import Any, Optional

from . import _host


class BusError(Exception):
    """The host refused a publish (an undeclared topic) or the value has no JSON."""


def get(topic: str, default: Any = None) -> Any:
    """The latest value of ``topic``, decoded from JSON; ``default`` when the topic is
    absent (its publisher failed, its data was late), undeclared, or not JSON."""
    raw = get_raw(topic)
    if raw is None:
        return default
    try:
        return json.loads(raw)
    except ValueError:
        return default


def get_raw(topic: str) -> Optional[str]:
    """The latest value of ``topic`` as JSON text; ``None`` when absent or undeclared."""
    return _host.get_bus().get(topic)


def publish(topic: str, value: Any) -> None:
    """Publishes ``value``, encoded as JSON, on ``topic``. Raises :class:`BusError`
    when it has no JSON encoding or the host refuses the topic."""
    try:
        text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as e:
        raise BusError(f"cannot encode {topic}: {e}") from None
    publish_raw(topic, text)


def publish_raw(topic: str, text: str) -> None:
    """Publishes JSON text on ``topic`` as is; the host refuses text that is not JSON."""
    try:
        _host.get_bus().publish(topic, text)
    except Exception as e:  # componentize_py_types.Err carries the host's message
        raise BusError(str(getattr(e, "value", e))) from None
