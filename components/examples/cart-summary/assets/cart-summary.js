// cart-summary: follow `ticket-selection` and `promotion` on the browser bus and update
// the cart. subscribe() replays the latest value, so the server-side state is shown
// first. The discount is computed as the component computes it (rounded down).
(function () {
  "use strict";

  function money(cents, currency) {
    var sign = cents < 0 ? "-" : "";
    var abs = Math.abs(cents);
    var frac = String(abs % 100);
    if (frac.length < 2) frac = "0" + frac;
    return currency + " " + sign + Math.floor(abs / 100) + "." + frac;
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  var MAX_PERCENT_OFF = 50;

  function render(cart, s, promotion) {
    var quantity = s && parseInt(s.quantity, 10);
    var price = s && parseInt(s.unit_price_cents, 10);
    while (cart.firstChild) cart.removeChild(cart.firstChild);
    if (!s || !(quantity > 0) || !isFinite(price)) {
      cart.appendChild(el("p", "cart-empty", "Your cart is empty."));
      return;
    }
    var currency = String(s.currency || "");
    var sum = price * quantity;
    cart.appendChild(el("p", "cart-line", quantity + " \u00d7 " + String(s.name || "")));
    var pct = promotion && parseInt(promotion.percent_off, 10);
    if (promotion && promotion.event_id === s.event_id && pct >= 1 && pct <= MAX_PERCENT_OFF) {
      var off = Math.floor((sum * pct) / 100);
      cart.appendChild(
        el("p", "cart-discount", String(promotion.code) + ": " + pct + " % off, \u2212" + money(off, currency))
      );
      sum -= off;
    }
    var total = el("p", "cart-total", "Total: ");
    var strong = el("strong", null, money(sum, currency));
    strong.setAttribute("data-oberon-total", "");
    total.appendChild(strong);
    cart.appendChild(total);
  }

  function init() {
    var bus = window.oberon && window.oberon.bus;
    if (!bus) return;
    var selection = null;
    var promotion = null;
    function update() {
      var carts = document.querySelectorAll('[data-oberon-component="cart-summary"] [data-oberon-cart]');
      for (var i = 0; i < carts.length; i++) render(carts[i], selection, promotion);
    }
    bus.subscribe("promotion", function (value) {
      promotion = value;
      if (selection) update();
    });
    bus.subscribe("ticket-selection", function (value) {
      selection = value;
      update();
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
