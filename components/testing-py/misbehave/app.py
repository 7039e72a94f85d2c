"""`misbehave-py`: a Python component that misbehaves on request, for the containment
tests (cli/tests/all/containment.rs), as `components/testing/misbehave` does in Rust.

Props: ``{"mode": "ok"|"loop"|"oom"|"raise"|"recursion"|"stack"|"exit"|"abort"}``.
Every mode but ``ok`` must end in the slot's fallback, within the slot's deadline,
and leave the rest of the page and the process serving.
"""

import os
import sys

from oberon_sdk import Component, Fragment, Metadata, export, html


class MisbehavePy(Component):
    def describe(self):
        return Metadata("misbehave-py")

    def render(self, ctx, props):
        mode = props.str("mode", "ok")
        if mode == "ok":
            return Fragment("<p>misbehave-py ok</p>")
        if mode == "loop":
            # Python bytecode that never returns: stopped by the epoch deadline.
            n = 0
            while True:
                n += 1
        if mode == "oom":
            return exhaust_memory()
        if mode == "raise":
            raise RuntimeError("misbehave-py asked to raise")
        if mode == "recursion":
            # Python's own recursion limit: a RecursionError, an exception like any.
            return recurse(0)
        if mode == "stack":
            # Past the recursion limit through C frames (map calls back into Python),
            # so the interpreter's native stack, not its frame limit, runs out.
            sys.setrecursionlimit(1_000_000)
            return str(c_recurse(0))
        if mode == "exit":
            # SystemExit is a BaseException: not the SDK's to turn into an error.
            sys.exit(3)
        if mode == "abort":
            os.abort()
        raise ValueError(f"unknown mode {html.escape(mode)}")


def exhaust_memory():
    """Allocates and writes 1 MiB blocks, keeping them all, until memory runs out."""
    kept = []
    while True:
        block = bytearray(b"\xa5") * (1 << 20)
        block[-1] = len(kept) & 0xFF
        kept.append(block)


def recurse(depth):
    return recurse(depth + 1) + 1


def c_recurse(depth):
    return sum(map(lambda d: c_recurse(d), [depth + 1]))


WitWorld = export(MisbehavePy)
