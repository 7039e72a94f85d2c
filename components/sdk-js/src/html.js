// HTML helpers. Components must escape every piece of data they interpolate.

const ENTITIES = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/**
 * Escapes `&`, `<`, `>`, `"` and `'` so the text is safe in element content and in
 * quoted attribute values. Non-strings are converted with `String` first.
 * @param {unknown} text
 * @returns {string}
 */
export function escape(text) {
  return String(text).replace(/[&<>"']/g, (c) => ENTITIES[c]);
}
