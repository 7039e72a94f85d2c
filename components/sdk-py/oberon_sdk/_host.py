"""The host's imports (``bus``, ``log``): the bindings componentize-py generates
(``wit_world``), imported with the SDK.

They are imported here, when the app module is imported, because that happens while
componentize-py pre-initialises the component: at render time the component has no
filesystem (the renderer gives it an empty WASI context), so a module first imported
then fails with ``ImportError``. Unit tests, where there are no bindings, assign
their own objects to :data:`bus` and :data:`log`.
"""

try:
    from wit_world.imports import bus, log
except ImportError:  # plain Python, not a component: the tests set them
    bus = None
    log = None


def get_bus():
    """The host's ``oberon:component/bus`` interface."""
    if bus is None:
        raise RuntimeError("oberon_sdk: no host bus here (not running in a component)")
    return bus


def get_log():
    """The host's ``oberon:component/log`` interface."""
    if log is None:
        raise RuntimeError("oberon_sdk: no host log here (not running in a component)")
    return log
