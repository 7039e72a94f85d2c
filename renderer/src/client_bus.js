// Oberon's client-side state bus: the same topics the components used on the server,
// live in the browser. publish(topic, value) notifies subscribers; subscribe(topic, fn)
// replays the latest value at once, so a late subscriber never misses state.
(function () {
  if (window.oberon && window.oberon.bus) return;
  var el = document.getElementById("oberon-bus-state");
  var state = {};
  try { state = el ? JSON.parse(el.textContent) : {}; } catch (e) { console.error("oberon bus: bad state", e); }
  var subs = {};
  function call(fn, value, topic) {
    try { fn(value, topic); } catch (e) { console.error("oberon bus: subscriber of " + topic + " failed", e); }
  }
  window.oberon = window.oberon || {};
  window.oberon.bus = {
    get: function (topic) { return state[topic]; },
    publish: function (topic, value) {
      state[topic] = value;
      (subs[topic] || []).slice().forEach(function (fn) { call(fn, value, topic); });
    },
    subscribe: function (topic, fn) {
      (subs[topic] = subs[topic] || []).push(fn);
      if (Object.prototype.hasOwnProperty.call(state, topic)) call(fn, state[topic], topic);
      return function () { subs[topic] = (subs[topic] || []).filter(function (g) { return g !== fn; }); };
    }
  };
})();
