"""What a component declares and returns: :class:`Metadata`, :class:`Fragment`,
:class:`HeadEntry` and :class:`Cacheability`."""

from dataclasses import dataclass, field
from enum import Enum
from typing import List, Optional, Tuple

#: The longest reuse the contract allows, in seconds.
MAX_REUSE_SECONDS = 86400


class Cacheability(Enum):
    """How cacheable a component's output is; the least cacheable component on a
    page decides the page's class."""

    #: The same for everyone.
    PUBLIC = 0
    #: The same for everyone but changes quickly (remaining tickets, prices).
    VOLATILE = 1
    #: Depends on who is asking (anything read from ``ctx.user``); never shared.
    PERSONAL = 2


@dataclass
class Metadata:
    """What a component reads, writes and ships. The host asks once per loaded
    version, never per request::

        Metadata("ticket-picker", subscribes=["event"], publishes=["ticket-selection"],
                 assets=["ticket-picker.js"], cacheability=Cacheability.VOLATILE)

    ``reuse``: seconds for which the renderer may reuse a render for a request with
    the same inputs (props, subscribed topics, path, params, query, locale); 0 means
    never. Only for a render that is a pure function of those inputs: no clock, no
    randomness, no request id, nothing of the user.
    """

    name: str
    subscribes: List[str] = field(default_factory=list)
    publishes: List[str] = field(default_factory=list)
    assets: List[str] = field(default_factory=list)
    cacheability: Cacheability = Cacheability.PUBLIC
    reuse: int = 0

    def __post_init__(self):
        for what in ("subscribes", "publishes", "assets"):
            value = getattr(self, what)
            if isinstance(value, str):
                raise TypeError(f"Metadata.{what} is a list of strings, not {value!r}")
            setattr(self, what, list(value))
        if not isinstance(self.cacheability, Cacheability):
            raise TypeError(
                f"Metadata.cacheability is a Cacheability, not {self.cacheability!r}"
            )
        if not isinstance(self.reuse, int) or not 0 <= self.reuse <= MAX_REUSE_SECONDS:
            raise ValueError(
                f"Metadata.reuse is whole seconds from 0 to {MAX_REUSE_SECONDS}, not {self.reuse!r}"
            )


@dataclass
class HeadEntry:
    """One element for the document head, ``<tag attr="v">content</tag>``. The host
    accepts ``title``, ``meta``, ``link``, ``script`` and ``style`` and escapes every
    attribute value and the content: give raw text."""

    tag: str
    attrs: List[Tuple[str, str]] = field(default_factory=list)
    content: Optional[str] = None

    def attr(self, name: str, value: str) -> "HeadEntry":
        """Adds an attribute; returns the entry, for chaining."""
        self.attrs.append((name, value))
        return self

    @classmethod
    def title(cls, title: str) -> "HeadEntry":
        """``<title>{title}</title>``."""
        return cls("title", content=title)

    @classmethod
    def meta_name(cls, name: str, content: str) -> "HeadEntry":
        """``<meta name="{name}" content="{content}">``."""
        return cls("meta", [("name", name), ("content", content)])

    @classmethod
    def meta_property(cls, prop: str, content: str) -> "HeadEntry":
        """``<meta property="{prop}" content="{content}">`` (Open Graph and the like)."""
        return cls("meta", [("property", prop), ("content", content)])

    @classmethod
    def link(cls, rel: str, href: str) -> "HeadEntry":
        """``<link rel="{rel}" href="{href}">``."""
        return cls("link", [("rel", rel), ("href", href)])


@dataclass
class Fragment:
    """The output of one render: HTML for the slot, used as is (escape every piece
    of data in it with :func:`oberon_sdk.html.escape`), and head entries."""

    html: str = ""
    head: List[HeadEntry] = field(default_factory=list)

    def with_head(self, entry: HeadEntry) -> "Fragment":
        """Adds a head entry; returns the fragment, for chaining."""
        self.head.append(entry)
        return self
