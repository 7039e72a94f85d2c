// The builder for what a component declares about itself (`describe`).

/** @typedef {import('oberon:component/types@0.2.0').Metadata} WitMetadata */
/** @typedef {import('oberon:component/types@0.2.0').Cacheability} CacheabilityValue */

/** How cacheable a component's output is (the contract's `cacheability` enum). */
export const Cacheability = Object.freeze({
  /** The same for everyone. */
  Public: /** @type {CacheabilityValue} */ ('public'),
  /** The same for everyone but changes quickly (remaining tickets, prices). */
  Volatile: /** @type {CacheabilityValue} */ ('volatile'),
  /** Depends on who is asking; never shared by a cache. */
  Personal: /** @type {CacheabilityValue} */ ('personal'),
});

const CACHEABILITY = new Set(Object.values(Cacheability));
const MAX_REUSE_SECONDS = 86400;

/**
 * What a component declares about itself: name, bus topics, assets, cacheability and
 * reuse. The host reads it once per loaded component version, never per request.
 *
 * ```js
 * new Metadata('greeting').subscribes('event').publishes('greeting').reuse(60)
 * ```
 */
export class Metadata {
  /** @param {string} name the component's name (its package name) */
  constructor(name) {
    if (typeof name !== 'string' || name === '') {
      throw new TypeError('metadata: the name must be a non-empty string');
    }
    this.name = name;
    /** @type {string[]} */
    this._subscribes = [];
    /** @type {string[]} */
    this._publishes = [];
    /** @type {string[]} */
    this._assets = [];
    /** @type {CacheabilityValue} */
    this._cacheability = Cacheability.Public;
    /** @type {number | undefined} */
    this._reuse = undefined;
  }

  /** Adds topics the component reads with `bus.get`. @param {...string} topics */
  subscribes(...topics) {
    this._subscribes.push(...strings('subscribes', topics));
    return this;
  }

  /** Adds topics the component writes with `bus.publish`. @param {...string} topics */
  publishes(...topics) {
    this._publishes.push(...strings('publishes', topics));
    return this;
  }

  /** Adds client-side files shipped with the component (relative to its asset root). @param {...string} paths */
  assets(...paths) {
    this._assets.push(...strings('assets', paths));
    return this;
  }

  /** Sets the cacheability class (`Cacheability.Public` by default). @param {CacheabilityValue} value */
  cacheability(value) {
    if (!CACHEABILITY.has(value)) {
      throw new TypeError(`metadata: cacheability must be one of ${[...CACHEABILITY].join(', ')}, not ${value}`);
    }
    this._cacheability = value;
    return this;
  }

  /**
   * Declares that the renderer may reuse a render for `seconds` (1 to 86400; 0 means
   * never) for requests with the same inputs. Only for a component whose render is a
   * pure function of its props, subscribed topics and the request's path, params,
   * query and locale: no clock, no randomness, no request id, no user, no log line
   * relied on per request.
   * @param {number} seconds
   */
  reuse(seconds) {
    if (!Number.isInteger(seconds) || seconds < 0 || seconds > MAX_REUSE_SECONDS) {
      throw new RangeError(`metadata: reuse must be a whole number of seconds from 0 to ${MAX_REUSE_SECONDS}, not ${seconds}`);
    }
    this._reuse = seconds > 0 ? seconds : undefined;
    return this;
  }

  /** The contract's `metadata` record. @returns {WitMetadata} */
  toRecord() {
    return {
      name: this.name,
      subscribes: [...this._subscribes],
      publishes: [...this._publishes],
      assets: [...this._assets],
      cacheability: this._cacheability,
      reuse: this._reuse,
    };
  }
}

/** @param {string} what @param {unknown[]} values @returns {string[]} */
function strings(what, values) {
  const flat = values.flat();
  for (const v of flat) {
    if (typeof v !== 'string' || v === '') {
      throw new TypeError(`metadata: ${what} takes non-empty strings, not ${JSON.stringify(v)}`);
    }
  }
  return /** @type {string[]} */ (flat);
}
