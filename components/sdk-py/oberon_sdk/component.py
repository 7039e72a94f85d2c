"""The :class:`Component` base class and :func:`export`, its adapter to the class
``WitWorld`` that componentize-py calls.

Errors: an exception raised by ``render`` (any ``Exception``, e.g. a ``KeyError``
from missing data or a :class:`~oberon_sdk.bus.BusError`) becomes the contract's
``err`` result, ``"<ExceptionType>: <message>"``: the slot shows its fallback, the
host logs the message, and the rest of the page renders. An exception raised by
``describe`` is logged (``describe failed: <ExceptionType>: <message>``, at error
level, in the host's log) and raised on: the instance traps, so the component does
not load and ``oberon component deploy`` refuses it.
"""

from typing import Type, Union

from . import log
from .context import Context
from .props import Props
from .types import Fragment, HeadEntry, Metadata


class Component:
    """An Oberon component: subclass it, implement both methods, and export it in
    the app module with ``WitWorld = export(MyComponent)``.

    The renderer gives every render a fresh instance, so nothing kept on ``self`` or
    in a global outlives one request. Import modules at the top of the app module: at
    render time there is no filesystem to import from.
    """

    def describe(self) -> Metadata:
        """Name, bus topics, assets and cacheability. Asked once per loaded
        version, not per request."""
        raise NotImplementedError

    def render(self, ctx: Context, props: Props) -> Union[Fragment, str]:
        """HTML for the slot for one request. ``props`` is the slot's JSON (``None``
        value when the page gives none). A ``str`` is taken as a fragment with that
        HTML and no head entries. Escape every piece of data with ``html.escape``."""
        raise NotImplementedError


class RenderError(Exception):
    """A failed render, as the message the contract's ``err`` result carries."""


def run_render(component: Component, ctx: Context, props_json: str) -> Fragment:
    """Calls ``component.render`` and checks what it returns. Raises
    :class:`RenderError` for bad props JSON, an exception in the render, or a
    return value that is not a fragment."""
    try:
        props = Props.from_json(props_json)
    except ValueError as e:
        raise RenderError(f"invalid props JSON: {e}") from None
    try:
        out = component.render(ctx, props)
    except Exception as e:  # noqa: BLE001 - every failure of a render is the slot's
        raise RenderError(f"{type(e).__name__}: {e}") from None
    if isinstance(out, str):
        return Fragment(out)
    if not isinstance(out, Fragment):
        raise RenderError(f"render returned {type(out).__name__}, not a Fragment")
    return out


def to_wit_metadata(m: Metadata, types) -> object:
    """``m`` as the contract's record; ``types`` is ``wit_world.imports.types``."""
    if not isinstance(m, Metadata):
        raise TypeError(f"describe returned {type(m).__name__}, not a Metadata")
    return types.Metadata(
        name=m.name,
        subscribes=list(m.subscribes),
        publishes=list(m.publishes),
        assets=list(m.assets),
        cacheability=types.Cacheability(m.cacheability.value),
        reuse=m.reuse or None,
    )


def to_wit_fragment(f: Fragment, types) -> object:
    """``f`` as the contract's record; ``types`` is ``wit_world.imports.types``."""
    head = [
        types.HeadEntry(tag=e.tag, attrs=[(k, v) for k, v in e.attrs], content=e.content)
        for e in f.head
        if _is_head_entry(e)
    ]
    return types.Fragment(html=f.html, head=head)


def _is_head_entry(e) -> bool:
    if not isinstance(e, HeadEntry):
        raise RenderError(f"a head entry is a HeadEntry, not {type(e).__name__}")
    return True


def export(component_class: Type[Component]) -> type:
    """The class componentize-py looks for in the app module (``WitWorld``), serving
    ``component_class``: ``WitWorld = export(Greeting)``."""
    # Imported now, while componentize-py pre-initialises the app: not at render time,
    # when the component has no filesystem to import from (see `_host`).
    from componentize_py_types import Err
    from wit_world.imports import types

    component = component_class()

    class WitWorld:
        def describe(self):
            try:
                return to_wit_metadata(component.describe(), types)
            except Exception as e:
                # The trap that follows says only that the instance trapped: the host's
                # log (and so `deploy`'s output) gets the reason.
                log.error(f"describe failed: {type(e).__name__}: {e}")
                raise

        def render(self, ctx, props):
            try:
                fragment = run_render(component, Context.from_wit(ctx), props)
                return to_wit_fragment(fragment, types)
            except RenderError as e:
                raise Err(str(e)) from None

    WitWorld.__name__ = WitWorld.__qualname__ = "WitWorld"
    return WitWorld
