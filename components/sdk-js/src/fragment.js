// Builders for a render's output: slot HTML plus head entries.

/** @typedef {import('oberon:component/types@0.2.0').Fragment} WitFragment */
/** @typedef {import('oberon:component/types@0.2.0').HeadEntry} WitHeadEntry */

/**
 * One `<title>`, `<meta>`, `<link>`, `<script>` or `<style>` element for the document
 * head. Attribute values and content are raw text: the host escapes them.
 */
export class HeadEntry {
  /** @param {string} tag */
  constructor(tag) {
    this.tag = tag;
    /** @type {[string, string][]} */
    this.attrs = [];
    /** @type {string | undefined} */
    this.content = undefined;
  }

  /** Adds an attribute. @param {string} name @param {string} value */
  attr(name, value) {
    this.attrs.push([String(name), String(value)]);
    return this;
  }

  /** Sets the element's text content. @param {string} content */
  text(content) {
    this.content = String(content);
    return this;
  }

  /** `<title>{title}</title>`. @param {string} title */
  static title(title) {
    return new HeadEntry('title').text(title);
  }

  /** `<meta name="{name}" content="{content}">`. @param {string} name @param {string} content */
  static metaName(name, content) {
    return new HeadEntry('meta').attr('name', name).attr('content', content);
  }

  /** `<meta property="{property}" content="{content}">` (Open Graph). @param {string} property @param {string} content */
  static metaProperty(property, content) {
    return new HeadEntry('meta').attr('property', property).attr('content', content);
  }

  /** `<link rel="{rel}" href="{href}">`. @param {string} rel @param {string} href */
  static link(rel, href) {
    return new HeadEntry('link').attr('rel', rel).attr('href', href);
  }

  /** The contract's `head-entry` record. @returns {WitHeadEntry} */
  toRecord() {
    return { tag: this.tag, attrs: this.attrs.map(([k, v]) => [k, v]), content: this.content };
  }
}

/** The output of one render. The HTML is used as is: escape data with `html.escape`. */
export class Fragment {
  /** @param {string} html */
  constructor(html = '') {
    this.html = String(html);
    /** @type {HeadEntry[]} */
    this.head = [];
  }

  /** A fragment with this HTML and no head entries. @param {string} html */
  static html(html) {
    return new Fragment(html);
  }

  /** A fragment with no HTML and no head entries. */
  static empty() {
    return new Fragment('');
  }

  /** Adds a head entry. @param {HeadEntry} entry */
  withHead(entry) {
    this.head.push(entry);
    return this;
  }

  /**
   * The contract's `fragment` record. A render may also return a plain string (its
   * HTML) or a plain `{html, head}` object; both are accepted.
   * @param {Fragment | string | {html: string, head?: (HeadEntry | WitHeadEntry)[]}} value
   * @returns {WitFragment}
   */
  static toRecord(value) {
    if (typeof value === 'string') {
      return { html: value, head: [] };
    }
    if (value === null || typeof value !== 'object' || typeof value.html !== 'string') {
      throw new TypeError('render must return a Fragment, a string or {html, head}');
    }
    const head = (value.head ?? []).map((e) =>
      e instanceof HeadEntry ? e.toRecord() : { tag: e.tag, attrs: e.attrs ?? [], content: e.content },
    );
    return { html: value.html, head };
  }
}
