// The per-request publish/subscribe state bus, over JSON. A component only sees the
// topics it declared in `subscribes` and may only publish those in `publishes`.

/**
 * @typedef {object} RawBus the contract's `bus` interface
 * @property {(topic: string) => string | undefined} get
 * @property {(topic: string, value: string) => void} publish throws on the host's refusal
 */

/**
 * The JSON bus over the contract's raw one.
 * @param {RawBus} raw
 */
export function jsonBus(raw) {
  return {
    /**
     * The latest value of `topic`, decoded from JSON; `undefined` when the topic is
     * absent, undeclared, or its text is not JSON.
     * @param {string} topic
     * @returns {any}
     */
    get(topic) {
      const json = raw.get(topic);
      if (json === undefined) {
        return undefined;
      }
      try {
        return JSON.parse(json);
      } catch {
        return undefined;
      }
    },

    /** The latest value of `topic` as JSON text. @param {string} topic */
    getRaw(topic) {
      return raw.get(topic);
    },

    /**
     * Publishes `value`, encoded as JSON, on `topic`. Throws when the value does not
     * encode (`undefined`, a function, a cycle) or the host refuses (undeclared topic).
     * @param {string} topic
     * @param {unknown} value
     */
    publish(topic, value) {
      let json;
      try {
        json = JSON.stringify(value);
      } catch (e) {
        throw new Error(`cannot encode ${topic}: ${e instanceof Error ? e.message : e}`);
      }
      if (json === undefined) {
        throw new Error(`cannot encode ${topic}: ${typeof value} is not JSON`);
      }
      publishRaw(raw, topic, json);
    },

    /** Publishes JSON text on `topic` as is. @param {string} topic @param {string} json */
    publishRaw(topic, json) {
      publishRaw(raw, topic, json);
    },
  };
}

/** @param {RawBus} raw @param {string} topic @param {string} json */
function publishRaw(raw, topic, json) {
  try {
    raw.publish(topic, json);
  } catch (e) {
    // A contract `err` arrives as an error whose payload is the host's message.
    throw new Error(`publish ${topic}: ${errorText(e)}`);
  }
}

/**
 * The text of anything thrown: a contract error's payload, an `Error`'s message, or
 * the value itself.
 * @param {unknown} e
 * @returns {string}
 */
export function errorText(e) {
  if (e !== null && typeof e === 'object') {
    if ('payload' in e && typeof e.payload === 'string') {
      return e.payload;
    }
    if (e instanceof Error) {
      return e.message;
    }
  }
  return String(e);
}
