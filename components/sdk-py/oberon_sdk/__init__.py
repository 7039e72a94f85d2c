"""The Oberon guest SDK for Python components, built with componentize-py.

The same shape as the Rust SDK (``components/sdk``)::

    from oberon_sdk import Component, Context, Fragment, Metadata, Props, bus, export, html

    class Greeting(Component):
        def describe(self) -> Metadata:
            return Metadata("greeting", subscribes=["event"])

        def render(self, ctx: Context, props: Props) -> Fragment:
            event = bus.get("event") or {}
            who = props.str("who", "world")
            return Fragment(f"<p>Hello, {html.escape(who)}!</p>")

    WitWorld = export(Greeting)

componentize-py looks for the class ``WitWorld`` in the app module: ``export`` makes
it from a :class:`Component`, converting the SDK's types to the contract's
(``oberon:component``) at the boundary.

Everything here is plain Python except :mod:`oberon_sdk._host`, which reaches the
host's imports (the ``wit_world`` bindings componentize-py generates) only when a
component runs, so the SDK is unit-tested with ``python3 -m unittest`` and no wasm.
"""

from . import bus, html, log
from .component import Component, export
from .context import Context, User
from .props import Props
from .types import Cacheability, Fragment, HeadEntry, Metadata

__all__ = [
    "Cacheability",
    "Component",
    "Context",
    "Fragment",
    "HeadEntry",
    "Metadata",
    "Props",
    "User",
    "bus",
    "export",
    "html",
    "log",
]
