// Adapts a component definition to the `describe` and `render` exports of the world.

import { Context } from './context.js';
import { Fragment } from './fragment.js';
import { Metadata } from './metadata.js';
import { Props } from './props.js';
import { errorText } from './bus.js';

/**
 * @typedef {object} Definition
 * @property {() => Metadata} describe what the component declares; called once per
 *   loaded component version, not per request
 * @property {(ctx: Context, props: Props) => Fragment | string | {html: string, head?: any[]}} render
 *   renders for one request; whatever it throws fails the render with that message
 */

/**
 * Turns a definition into the world's exports. Export its two members from the
 * component's entry module:
 *
 * ```js
 * export const { describe, render } = defineComponent({ describe() {...}, render(ctx, props) {...} });
 * ```
 * What `describe` throws is logged with `logError` first (`describe failed: <name>:
 * <message>`; the SDK's entry module passes the host's log), then thrown on: the
 * component does not load, and the host's refusal gives that line as the reason.
 * @param {Definition} definition
 * @param {{logError?: (message: string) => void}} [options]
 */
export function defineComponent(definition, { logError } = {}) {
  if (typeof definition?.describe !== 'function' || typeof definition?.render !== 'function') {
    throw new TypeError('defineComponent takes {describe, render}, both functions');
  }
  return {
    /** @returns {import('oberon:component/types@0.2.0').Metadata} */
    describe() {
      try {
        const metadata = definition.describe();
        if (!(metadata instanceof Metadata)) {
          throw new TypeError('describe must return a Metadata');
        }
        return metadata.toRecord();
      } catch (e) {
        const name = e instanceof Error ? e.name : 'thrown';
        logError?.(`describe failed: ${name}: ${errorText(e)}`);
        throw e;
      }
    },

    /**
     * The contract's `result<fragment, string>`: a return is `ok`, a throw is `err`
     * with the thrown message as a string.
     * @param {import('oberon:component/types@0.2.0').Context} ctx
     * @param {string} props
     * @returns {import('oberon:component/types@0.2.0').Fragment}
     */
    render(ctx, props) {
      try {
        return Fragment.toRecord(definition.render(new Context(ctx), Props.fromJson(props)));
      } catch (e) {
        // A thrown string is the `err` payload the host shows for the failed slot.
        throw errorText(e);
      }
    },
  };
}
