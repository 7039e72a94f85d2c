"""HTML escaping. A component escapes every piece of data it puts into HTML."""

_ENTITIES = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}
)


def escape(text: object) -> str:
    """``text`` (made a string with ``str``) with ``&``, ``<``, ``>``, ``"`` and ``'``
    escaped, safe in element content and in quoted attribute values. The same
    entities as the Rust SDK's ``html::escape``."""
    return str(text).translate(_ENTITIES)
