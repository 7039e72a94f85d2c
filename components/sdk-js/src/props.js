// Slot props: the JSON object the page configuration gives a component.

/** The props of one slot: a JSON value (normally an object; `null` when absent). */
export class Props {
  /** @param {unknown} value */
  constructor(value) {
    /** The raw JSON value. */
    this.value = value;
  }

  /**
   * Parses props from JSON text. Empty or blank text gives `null` props; invalid JSON
   * throws (and so fails the render with "invalid props JSON: ...").
   * @param {string} text
   */
  static fromJson(text) {
    if (text.trim() === '') {
      return new Props(null);
    }
    try {
      return new Props(JSON.parse(text));
    } catch (e) {
      throw new Error(`invalid props JSON: ${e instanceof Error ? e.message : e}`);
    }
  }

  /** The member `key` of the props object, if any. @param {string} key @returns {unknown} */
  get(key) {
    const v = this.value;
    if (v === null || typeof v !== 'object' || Array.isArray(v) || !Object.hasOwn(v, key)) {
      return undefined;
    }
    return /** @type {Record<string, unknown>} */ (v)[key];
  }

  /** The member `key` if it is a string. @param {string} key @returns {string | undefined} */
  str(key) {
    const v = this.get(key);
    return typeof v === 'string' ? v : undefined;
  }

  /** The member `key` if it is a finite number. @param {string} key @returns {number | undefined} */
  number(key) {
    const v = this.get(key);
    return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
  }

  /** The member `key` if it is an integer. @param {string} key @returns {number | undefined} */
  int(key) {
    const v = this.get(key);
    return Number.isInteger(v) ? /** @type {number} */ (v) : undefined;
  }

  /** The member `key` if it is a boolean. @param {string} key @returns {boolean | undefined} */
  bool(key) {
    const v = this.get(key);
    return typeof v === 'boolean' ? v : undefined;
  }

  /** The member `key` if it is an array. @param {string} key @returns {unknown[] | undefined} */
  array(key) {
    const v = this.get(key);
    return Array.isArray(v) ? v : undefined;
  }

  /**
   * The props as an object over `defaults`: `null` props give the defaults, an object
   * overrides them member by member, anything else throws.
   * @template {Record<string, unknown>} T
   * @param {T} defaults
   * @returns {T}
   */
  with(defaults) {
    const v = this.value;
    if (v === null) {
      return { ...defaults };
    }
    if (typeof v !== 'object' || Array.isArray(v)) {
      throw new TypeError('invalid props: expected a JSON object');
    }
    return /** @type {T} */ ({ ...defaults, ...v });
  }
}
