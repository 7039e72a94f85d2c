// Oberon's JavaScript component SDK, for the contract `oberon:component@0.2.0`.
//
// A component's entry module imports this file and exports `describe` and `render`:
//
//   import { defineComponent, Metadata, Fragment, bus, html } from '../oberon/sdk-js/index.js';
//   export const { describe, render } = defineComponent({
//     describe: () => new Metadata('hello').subscribes('event'),
//     render: (ctx, props) => Fragment.html(`<p>${html.escape(props.str('who') ?? 'world')}</p>`),
//   });
//
// This is the only module that imports the contract's interfaces; the others are
// plain JavaScript, unit-tested under Node.

import { get, publish } from 'oberon:component/bus@0.2.0';
import { log as rawLog } from 'oberon:component/log@0.2.0';
import { jsonBus } from './bus.js';
import { defineComponent as define } from './component.js';
import { logger } from './log.js';
import * as htmlModule from './html.js';

export { Metadata, Cacheability } from './metadata.js';
export { Fragment, HeadEntry } from './fragment.js';
export { Context, User } from './context.js';
export { Props } from './props.js';

/** The per-request state bus: `bus.get(topic)`, `bus.publish(topic, value)`, over JSON. */
export const bus = jsonBus({ get, publish });
/** The host's structured log: `log.info('...')` and the other levels. */
export const log = logger(rawLog);
/** `html.escape(text)`: escape every piece of data put into HTML. */
export const html = htmlModule;

/**
 * A component's `describe` and `render` exports from its definition; what `describe`
 * throws is logged (the reason `deploy` gives for refusing it) and thrown on.
 * @param {import('./component.js').Definition} definition
 */
export function defineComponent(definition) {
  return define(definition, { logError: log.error });
}
