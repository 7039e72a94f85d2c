// ticket-picker: republish the selection on the browser bus when the form changes.
// The server already published the initial selection; window.oberon.bus replays it.
(function () {
  "use strict";

  // `typing`: an `input` event, the user may be half way through the quantity. Then
  // an empty field publishes nothing and the field is left alone (rewriting "" to "1"
  // would turn a typed "3" into "13"); `change` and `submit` normalise it.
  function selectionOf(form, typing) {
    var select = form.querySelector('select[name="type"]');
    var qtyInput = form.querySelector('input[name="qty"]');
    var option = select && select.options[select.selectedIndex];
    if (!option || option.disabled) return null;
    var remaining = parseInt(option.getAttribute("data-remaining"), 10) || 0;
    var max = Math.min(10, remaining);
    var quantity = parseInt(qtyInput && qtyInput.value, 10);
    if (typing && !isFinite(quantity)) return null;
    if (!isFinite(quantity) || quantity < 1) quantity = 1;
    if (quantity > max) quantity = max;
    if (qtyInput) {
      qtyInput.max = String(max);
      if (!typing && String(quantity) !== qtyInput.value) qtyInput.value = String(quantity);
    }
    return {
      event_id: form.getAttribute("data-event-id"),
      ticket_type: option.value,
      name: option.getAttribute("data-name"),
      quantity: quantity,
      unit_price_cents: parseInt(option.getAttribute("data-price-cents"), 10),
      currency: option.getAttribute("data-currency")
    };
  }

  function wire(form) {
    if (form.getAttribute("data-oberon-wired")) return;
    form.setAttribute("data-oberon-wired", "1");
    var publish = function (typing) {
      var selection = selectionOf(form, typing);
      var bus = window.oberon && window.oberon.bus;
      if (selection && bus) bus.publish("ticket-selection", selection);
    };
    form.addEventListener("change", function () { publish(false); });
    form.addEventListener("input", function () { publish(true); });
    // With the bus available, the page updates in place: no reload needed.
    form.addEventListener("submit", function (e) {
      if (window.oberon && window.oberon.bus) {
        e.preventDefault();
        publish(false);
      }
    });
  }

  function init() {
    var forms = document.querySelectorAll('[data-oberon-component="ticket-picker"]');
    for (var i = 0; i < forms.length; i++) wire(forms[i]);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
