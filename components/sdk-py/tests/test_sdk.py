"""The SDK's plain-Python parts, with no wasm: ``python3 -m unittest`` in
``components/sdk-py`` (the oberon-cli tests run it too)."""

import sys
import unittest
from enum import Enum
from types import ModuleType, SimpleNamespace

from oberon_sdk import (
    Cacheability,
    Component,
    Context,
    Fragment,
    HeadEntry,
    Metadata,
    Props,
    User,
    _host,
    bus,
    export,
    html,
    log,
)
from oberon_sdk.component import RenderError, run_render, to_wit_fragment, to_wit_metadata


class Err(Exception):
    """What componentize-py raises for a host function's ``err``."""

    def __init__(self, value):
        super().__init__(value)
        self.value = value


class FakeBus:
    def __init__(self, topics):
        self.topics = topics
        self.published = []

    def get(self, topic):
        return self.topics.get(topic)

    def publish(self, topic, value):
        if topic != "declared":
            raise Err(f"topic {topic} is not declared in publishes")
        self.published.append((topic, value))


class FakeLog:
    class Level(Enum):
        DEBUG = 0
        INFO = 1
        WARN = 2
        ERROR = 3

    def __init__(self):
        self.lines = []

    def log(self, level, message):
        self.lines.append((level, message))


# The contract's records, as componentize-py generates them (keyword constructors).
WIT_TYPES = SimpleNamespace(
    Metadata=lambda **kw: SimpleNamespace(kind="metadata", **kw),
    Fragment=lambda **kw: SimpleNamespace(kind="fragment", **kw),
    HeadEntry=lambda **kw: SimpleNamespace(kind="head", **kw),
    Cacheability=lambda value: ("cacheability", value),
)


class HtmlTest(unittest.TestCase):
    def test_escapes_the_five_characters_like_the_rust_sdk(self):
        self.assertEqual(
            html.escape("<a href=\"x\" title='y'>Tom & Jerry</a>"),
            "&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;Tom &amp; Jerry&lt;/a&gt;",
        )
        self.assertEqual(html.escape(""), "")
        self.assertEqual(html.escape("Zürich · 20:00 €"), "Zürich · 20:00 €")
        self.assertEqual(html.escape("&amp;"), "&amp;amp;")
        self.assertEqual(html.escape(42), "42")


class PropsTest(unittest.TestCase):
    def test_typed_getters(self):
        p = Props.from_json('{"name":"x","qty":5,"price":2.5,"on":true,"list":[1]}')
        self.assertEqual(p.str("name"), "x")
        self.assertEqual(p.int("qty"), 5)
        self.assertEqual(p.float("qty"), 5.0)
        self.assertEqual(p.float("price"), 2.5)
        self.assertEqual(p.bool("on"), True)
        self.assertIsNone(p.int("on"), "true is not an integer")
        self.assertIsNone(p.str("qty"))
        self.assertEqual(p.str("missing", "d"), "d")
        self.assertEqual(p.get("list"), [1])

    def test_empty_and_bad_props(self):
        for text in ["", "  ", "null"]:
            p = Props.from_json(text)
            self.assertIsNone(p.value)
            self.assertEqual(p.str("x", "d"), "d")
        self.assertIsNone(Props.from_json("[1]").get("x"))
        with self.assertRaises(ValueError):
            Props.from_json("{")


class ContextTest(unittest.TestCase):
    def test_lookups_and_user(self):
        raw = SimpleNamespace(
            path="/events/42",
            params=[("id", "42")],
            query=[("qty", "3"), ("qty", "4"), ("type", "vip")],
            locale="en-GB",
            user=SimpleNamespace(id="https://idp.example/a%23b#u1#x", roles=["admin"]),
            request_id="r1",
        )
        ctx = Context.from_wit(raw)
        self.assertEqual(ctx.param("id"), "42")
        self.assertIsNone(ctx.param("nope"))
        self.assertEqual(ctx.query("qty"), "3")
        self.assertEqual(ctx.query("type"), "vip")
        self.assertEqual((ctx.path, ctx.locale, ctx.request_id), ("/events/42", "en-GB", "r1"))
        self.assertEqual(ctx.user.subject, "u1#x")
        self.assertEqual(ctx.user.issuer, "https://idp.example/a#b")
        self.assertTrue(ctx.user.has_role("admin"))
        self.assertFalse(ctx.user.has_role("staff"))
        self.assertIsNone(Context().user)
        self.assertEqual(User("plain").subject, "plain")


class TypesTest(unittest.TestCase):
    def test_metadata_defaults_and_checks(self):
        m = Metadata("x")
        self.assertEqual((m.subscribes, m.publishes, m.assets), ([], [], []))
        self.assertEqual((m.cacheability, m.reuse), (Cacheability.PUBLIC, 0))
        m = Metadata("t", subscribes=("event",), cacheability=Cacheability.VOLATILE, reuse=60)
        self.assertEqual(m.subscribes, ["event"])
        with self.assertRaises(TypeError):
            Metadata("x", subscribes="event")
        with self.assertRaises(TypeError):
            Metadata("x", cacheability="public")
        for bad in (-1, 86401, 1.5):
            with self.assertRaises(ValueError):
                Metadata("x", reuse=bad)

    def test_metadata_to_wit(self):
        w = to_wit_metadata(
            Metadata("t", publishes=["sel"], assets=["t.js"], cacheability=Cacheability.PERSONAL),
            WIT_TYPES,
        )
        self.assertEqual((w.name, w.subscribes, w.publishes, w.assets), ("t", [], ["sel"], ["t.js"]))
        self.assertEqual(w.cacheability, ("cacheability", 2))
        self.assertIsNone(w.reuse, "0 is never reused: none")
        self.assertEqual(to_wit_metadata(Metadata("t", reuse=60), WIT_TYPES).reuse, 60)
        with self.assertRaises(TypeError):
            to_wit_metadata({"name": "t"}, WIT_TYPES)

    def test_fragment_and_head_entries(self):
        f = (
            Fragment("<p>x</p>")
            .with_head(HeadEntry.title("T"))
            .with_head(HeadEntry.meta_name("description", "D"))
            .with_head(HeadEntry.link("stylesheet", "/a.css").attr("media", "print"))
            .with_head(HeadEntry.meta_property("og:title", "O"))
        )
        w = to_wit_fragment(f, WIT_TYPES)
        self.assertEqual(w.html, "<p>x</p>")
        self.assertEqual([(e.tag, e.content) for e in w.head][:2], [("title", "T"), ("meta", None)])
        self.assertEqual(w.head[1].attrs, [("name", "description"), ("content", "D")])
        self.assertEqual(
            w.head[2].attrs, [("rel", "stylesheet"), ("href", "/a.css"), ("media", "print")]
        )
        self.assertEqual(w.head[3].attrs, [("property", "og:title"), ("content", "O")])
        self.assertEqual(Fragment().html, "")
        with self.assertRaises(RenderError):
            to_wit_fragment(Fragment("x", head=["<title>"]), WIT_TYPES)


class Greeter(Component):
    def describe(self):
        return Metadata("greeter")

    def render(self, ctx, props):
        if props.bool("fail"):
            raise KeyError("price")
        if props.bool("text"):
            return "<p>plain</p>"
        if props.bool("wrong"):
            return 42
        return Fragment(f"<p>Hello, {html.escape(props.str('who', 'world'))}!</p>")


class RenderTest(unittest.TestCase):
    def test_results_and_errors(self):
        ctx = Context()
        self.assertEqual(run_render(Greeter(), ctx, '{"who":"<b>"}').html, "<p>Hello, &lt;b&gt;!</p>")
        self.assertEqual(run_render(Greeter(), ctx, "").html, "<p>Hello, world!</p>")
        self.assertEqual(run_render(Greeter(), ctx, '{"text":true}').html, "<p>plain</p>")
        for props, message in [
            ('{"fail":true}', "KeyError: 'price'"),
            ('{"wrong":true}', "render returned int, not a Fragment"),
            ("{", "invalid props JSON: "),
        ]:
            with self.assertRaises(RenderError) as caught:
                run_render(Greeter(), ctx, props)
            self.assertTrue(str(caught.exception).startswith(message), str(caught.exception))


class HostTest(unittest.TestCase):
    def setUp(self):
        self.bus = FakeBus({"event": '{"name":"Gig"}', "broken": "{"})
        self.log = FakeLog()
        _host.bus, _host.log = self.bus, self.log

    def tearDown(self):
        _host.bus = _host.log = None

    def test_bus_get_decodes_json(self):
        self.assertEqual(bus.get("event"), {"name": "Gig"})
        self.assertEqual(bus.get_raw("event"), '{"name":"Gig"}')
        self.assertIsNone(bus.get("absent"))
        self.assertEqual(bus.get("absent", {}), {})
        self.assertEqual(bus.get("broken", "d"), "d")

    def test_bus_publish_encodes_json_and_reports_refusals(self):
        bus.publish("declared", {"qty": 2, "names": ["a"]})
        self.assertEqual(self.bus.published, [("declared", '{"qty":2,"names":["a"]}')])
        with self.assertRaises(bus.BusError) as caught:
            bus.publish("other", 1)
        self.assertEqual(str(caught.exception), "topic other is not declared in publishes")
        with self.assertRaises(bus.BusError) as caught:
            bus.publish("declared", object())
        self.assertIn("cannot encode declared", str(caught.exception))
        with self.assertRaises(bus.BusError):
            bus.publish("declared", float("nan"))

    def test_log_levels(self):
        log.debug("d")
        log.info("i")
        log.warn("w")
        log.error(3)
        self.assertEqual(
            [(level.name, message) for level, message in self.log.lines],
            [("DEBUG", "d"), ("INFO", "i"), ("WARN", "w"), ("ERROR", "3")],
        )


class Broken(Component):
    def describe(self):
        raise ValueError("no name yet")


class ExportTest(unittest.TestCase):
    """``export``'s ``WitWorld`` with the modules componentize-py generates faked."""

    def setUp(self):
        self.log = FakeLog()
        _host.log = self.log
        imports = ModuleType("wit_world.imports")
        imports.types = WIT_TYPES
        world = ModuleType("wit_world")
        world.imports = imports
        runtime = ModuleType("componentize_py_types")
        runtime.Err = Err
        self.saved = {name: sys.modules.get(name) for name in self.fakes()}
        sys.modules.update(
            {
                "wit_world": world,
                "wit_world.imports": imports,
                "wit_world.imports.types": WIT_TYPES,
                "componentize_py_types": runtime,
            }
        )

    def tearDown(self):
        _host.log = None
        for name, module in self.saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module

    @staticmethod
    def fakes():
        return ["wit_world", "wit_world.imports", "wit_world.imports.types", "componentize_py_types"]

    def raw_context(self):
        return SimpleNamespace(path="/", params=[], query=[], locale="en", user=None, request_id="r")

    def test_describe_and_render_through_the_contract_types(self):
        world = export(Greeter)()
        self.assertEqual(world.describe().name, "greeter")
        fragment = world.render(self.raw_context(), '{"who":"Ann"}')
        self.assertEqual((fragment.kind, fragment.html), ("fragment", "<p>Hello, Ann!</p>"))
        with self.assertRaises(Err) as caught:
            world.render(self.raw_context(), '{"fail":true}')
        self.assertEqual(caught.exception.value, "KeyError: 'price'")

    def test_a_failing_describe_is_logged_and_raised(self):
        with self.assertRaises(ValueError):
            export(Broken)().describe()
        self.assertEqual(
            [(level.name, message) for level, message in self.log.lines],
            [("ERROR", "describe failed: ValueError: no name yet")],
        )


if __name__ == "__main__":
    unittest.main()
