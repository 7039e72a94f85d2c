// Oberon's client-side state bus: the same topics the components used on the server,
// live in the browser. publish(topic, value) notifies subscribers; subscribe(topic, fn)
// replays the latest value at once, so a late subscriber never misses state.
// Maps, not plain objects: a topic named "__proto__" or "constructor" is just a topic.
(function () {
  if (window.oberon && window.oberon.bus) return;
  var el = document.getElementById("oberon-bus-state");
  var state = new Map();
  try {
    var parsed = el ? JSON.parse(el.textContent) : {};
    Object.keys(parsed).forEach(function (k) { state.set(k, parsed[k]); });
  } catch (e) { console.error("oberon bus: bad state", e); }
  var subs = new Map();
  function call(fn, value, topic) {
    try { fn(value, topic); } catch (e) { console.error("oberon bus: subscriber of " + topic + " failed", e); }
  }
  window.oberon = window.oberon || {};
  window.oberon.bus = {
    get: function (topic) { return state.get(topic); },
    publish: function (topic, value) {
      state.set(topic, value);
      (subs.get(topic) || []).slice().forEach(function (fn) { call(fn, value, topic); });
    },
    subscribe: function (topic, fn) {
      if (!subs.has(topic)) subs.set(topic, []);
      subs.get(topic).push(fn);
      if (state.has(topic)) call(fn, state.get(topic), topic);
      return function () {
        subs.set(topic, (subs.get(topic) || []).filter(function (g) { return g !== fn; }));
      };
    }
  };
})();
