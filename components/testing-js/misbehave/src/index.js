// `misbehave-js`: a JavaScript component that misbehaves on request, for the
// containment tests (cli/tests/all/containment.rs), as `components/testing/misbehave`
// does in Rust.
//
// Props: {"mode": "ok"|"loop"|"oom"|"throw"|"throw-value"|"stack"}. Every mode but
// `ok` must end in the slot's fallback, within the slot's deadline, and leave the rest
// of the page and the process serving.
import { defineComponent, Metadata, Fragment, html } from '../oberon/sdk-js/index.js';

export const { describe, render } = defineComponent({
  describe() {
    return new Metadata('misbehave-js');
  },

  render(_ctx, props) {
    const mode = props.str('mode') ?? 'ok';
    switch (mode) {
      case 'ok':
        return Fragment.html('<p>misbehave-js ok</p>');
      case 'loop':
        return spin();
      case 'oom':
        return exhaustMemory();
      case 'throw':
        throw new Error('misbehave-js asked to throw');
      case 'throw-value':
        // Not an Error: the SDK turns any thrown value into the render's error.
        throw { reason: 'misbehave-js threw a plain object' };
      case 'stack':
        return recurse(0);
      default:
        throw new Error(`unknown mode ${html.escape(mode)}`);
    }
  },
});

/** Loops forever: stopped by the epoch deadline. */
function spin() {
  let n = 0;
  for (;;) {
    n = (n + 1) | 0;
  }
}

/** Allocates and writes 1 MiB buffers, keeping them all, until memory runs out. */
function exhaustMemory() {
  const kept = [];
  for (;;) {
    const block = new Uint8Array(1 << 20).fill(0xa5);
    block[block.length - 1] = kept.length & 0xff;
    kept.push(block);
  }
}

/** Recursion without end: SpiderMonkey's "too much recursion", or the wasm stack. */
function recurse(depth) {
  return recurse(depth + 1) + 1;
}
