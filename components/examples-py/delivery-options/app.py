"""`delivery-options` (team fulfilment, Python): how the tickets chosen on the event page
reach the visitor, and what each way costs.

Subscribes ``ticket-selection``, which the Rust ``ticket-picker`` (team checkout)
publishes. Public, reusable for 60 s: a pure function of the selection and its props.
Props: ``post_fee_cents`` (the posted tickets' fee per order, default 250).
Without a selection (the picker fell back, or every ticket type is sold out) it says
how tickets are delivered, without counts or prices.
"""

from oberon_sdk import Component, Fragment, Metadata, bus, export, html

DEFAULT_POST_FEE_CENTS = 250


class DeliveryOptions(Component):
    def describe(self):
        return Metadata("delivery-options", subscribes=["ticket-selection"], reuse=60)

    def render(self, ctx, props):
        fee = props.int("post_fee_cents", DEFAULT_POST_FEE_CENTS)
        selection = bus.get("ticket-selection")
        if not isinstance(selection, dict) or not selection.get("quantity"):
            return Fragment(section("<p>Tickets arrive as e-tickets, or by post.</p>"))
        quantity = int(selection["quantity"])
        currency = str(selection.get("currency", ""))
        what = f"{quantity} × {selection.get('name', 'ticket')}"
        return Fragment(
            section(
                f'<p class="delivery-for">For {html.escape(what)}:</p>'
                "<ul>"
                "<li>E-tickets, by email and in the app: <strong>free</strong></li>"
                f"<li>By post, {quantity} printed ticket{'s' if quantity != 1 else ''}: "
                f"<strong>{html.escape(money(fee, currency))}</strong></li>"
                "</ul>"
            )
        )


def section(body):
    return (
        '<section class="delivery-options" data-oberon-component="delivery-options">'
        f"<h2>Delivery</h2>{body}</section>"
    )


def money(cents, currency):
    """``250, "EUR"`` → ``EUR 2.50``, as the Rust components write it."""
    sign = "-" if cents < 0 else ""
    cents = abs(cents)
    return f"{currency} {sign}{cents // 100}.{cents % 100:02d}"


WitWorld = export(DeliveryOptions)
