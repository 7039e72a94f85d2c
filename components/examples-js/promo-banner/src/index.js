// `promo-banner` (team marketing, JavaScript): the event's promotion, announced on the
// event page and published for the cart.
//
// Subscribes `event` (the events BFF's data); publishes `promotion`, which the Rust
// `cart-summary` (team checkout) reads to take the discount off its total. Public,
// reusable for 60 s: a pure function of the event and its props.
// Props: `code` (default `EARLYBIRD`) and `percent_off` (1 to 50, default 10). No
// promotion, and nothing published, while every ticket type is sold out.
import { defineComponent, Fragment, Metadata, bus, html } from '../oberon/sdk-js/index.js';

const MAX_PERCENT_OFF = 50;

export const { describe, render } = defineComponent({
  describe() {
    return new Metadata('promo-banner').subscribes('event').publishes('promotion').reuse(60);
  },

  render(ctx, props) {
    const event = bus.get('event');
    const types = Array.isArray(event?.ticket_types) ? event.ticket_types : [];
    if (typeof event?.id !== 'string' || !types.some((t) => t?.remaining > 0)) {
      return Fragment.html('');
    }
    const code = props.str('code') ?? 'EARLYBIRD';
    const percentOff = Math.min(Math.max(props.int('percent_off') ?? 10, 1), MAX_PERCENT_OFF);
    bus.publish('promotion', { event_id: event.id, code, percent_off: percentOff });
    const name = typeof event.name === 'string' ? event.name : 'this event';
    return Fragment.html(
      '<aside class="promo-banner" data-oberon-component="promo-banner">' +
        `<p><strong>${html.escape(code)}</strong>: ${percentOff} % off tickets for ` +
        `${html.escape(name)}, taken off in your cart.</p></aside>`,
    );
  },
});
