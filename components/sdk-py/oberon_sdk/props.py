"""Slot props: the JSON the page configuration gives a component."""

import json
from typing import Any, Optional


class Props:
    """The props of one slot: a JSON value, normally an object (``None`` when the
    page gives none). The typed getters return ``default`` when the member is absent
    or of another type, so a template never has to guess."""

    __slots__ = ("value",)

    def __init__(self, value: Any = None):
        #: The decoded JSON value.
        self.value = value

    @classmethod
    def from_json(cls, text: str) -> "Props":
        """Props from JSON text; empty or blank text gives ``None`` props. Raises
        ``ValueError`` for text that is not JSON."""
        if not text.strip():
            return cls(None)
        return cls(json.loads(text))

    def get(self, key: str, default: Any = None) -> Any:
        """The member ``key`` of the props object, whatever its type."""
        if isinstance(self.value, dict):
            return self.value.get(key, default)
        return default

    def str(self, key: str, default: Optional[str] = None) -> Optional[str]:
        """The member ``key`` if it is a string."""
        value = self.get(key)
        return value if isinstance(value, str) else default

    def int(self, key: str, default: Optional[int] = None) -> Optional[int]:
        """The member ``key`` if it is an integer (``true`` is not one)."""
        value = self.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else default

    def float(self, key: str, default: Optional[float] = None) -> Optional[float]:
        """The member ``key`` if it is a number, as a float."""
        value = self.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        return default

    def bool(self, key: str, default: Optional[bool] = None) -> Optional[bool]:
        """The member ``key`` if it is a boolean."""
        value = self.get(key)
        return value if isinstance(value, bool) else default

    def __repr__(self) -> str:
        return f"Props({self.value!r})"
