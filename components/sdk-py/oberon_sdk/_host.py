"""The host's imports (``bus``, ``log``), found only when first used.

In a component they are the bindings componentize-py generates (``wit_world``);
unit tests assign their own objects to :data:`bus` and :data:`log` instead.
"""

bus = None
log = None


def get_bus():
    """The host's ``oberon:component/bus`` interface."""
    global bus
    if bus is None:
        from wit_world.imports import bus as wit_bus

        bus = wit_bus
    return bus


def get_log():
    """The host's ``oberon:component/log`` interface."""
    global log
    if log is None:
        from wit_world.imports import log as wit_log

        log = wit_log
    return log
