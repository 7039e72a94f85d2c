// cart-summary: follow `ticket-selection` on the browser bus and update the cart.
// subscribe() replays the latest value, so the server-side selection is shown first.
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

  function render(cart, s) {
    var quantity = s && parseInt(s.quantity, 10);
    var price = s && parseInt(s.unit_price_cents, 10);
    while (cart.firstChild) cart.removeChild(cart.firstChild);
    if (!s || !(quantity > 0) || !isFinite(price)) {
      cart.appendChild(el("p", "cart-empty", "Your cart is empty."));
      return;
    }
    cart.appendChild(el("p", "cart-line", quantity + " \u00d7 " + String(s.name || "")));
    var total = el("p", "cart-total", "Total: ");
    var strong = el("strong", null, money(price * quantity, String(s.currency || "")));
    strong.setAttribute("data-oberon-total", "");
    total.appendChild(strong);
    cart.appendChild(total);
  }

  function init() {
    var bus = window.oberon && window.oberon.bus;
    if (!bus) return;
    bus.subscribe("ticket-selection", function (selection) {
      var carts = document.querySelectorAll('[data-oberon-component="cart-summary"] [data-oberon-cart]');
      for (var i = 0; i < carts.length; i++) render(carts[i], selection);
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
