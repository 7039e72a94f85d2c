// A JavaScript component: reads the `event` topic a Rust component publishes, and
// publishes `greeting` for others.
import { defineComponent, Metadata, Fragment, HeadEntry, bus, html, log } from '../oberon/sdk-js/index.js';

export const { describe, render } = defineComponent({
  describe() {
    return new Metadata('greeting-js').subscribes('event').publishes('greeting').reuse(60);
  },

  render(ctx, props) {
    const hello = props.str('hello') ?? 'Welcome to';
    const event = bus.get('event');
    if (!event || typeof event.name !== 'string') {
      return Fragment.html('<p>Nothing on right now.</p>');
    }
    const id = ctx.param('id') ?? '?';
    bus.publish('greeting', { event: event.name, hello });
    log.debug(`greeted ${event.name}`);
    return Fragment.html(
      `<p class="greeting">${html.escape(hello)} ${html.escape(event.name)} (#${html.escape(id)})</p>`,
    ).withHead(HeadEntry.title(event.name));
  },
});
