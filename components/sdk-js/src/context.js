// The request context a component renders for, with lookup helpers.

/** @typedef {import('oberon:component/types@0.2.0').Context} WitContext */
/** @typedef {import('oberon:component/types@0.2.0').User} WitUser */

/** The signed-in user, as asserted by the gateway. */
export class User {
  /** @param {WitUser} user */
  constructor(user) {
    /** `ISSUER#SUBJECT`, unique across identity providers: key anything by it. */
    this.id = user.id;
    /** @type {string[]} */
    this.roles = user.roles;
  }

  /** Whether the user has the role `role`. @param {string} role */
  hasRole(role) {
    return this.roles.includes(role);
  }

  /** The user's id at their identity provider (`sub`), for display. */
  get subject() {
    const i = this.id.indexOf('#');
    return i < 0 ? this.id : this.id.slice(i + 1);
  }

  /** The identity provider that authenticated the user (its `iss`). */
  get issuer() {
    const i = this.id.indexOf('#');
    const issuer = i < 0 ? '' : this.id.slice(0, i);
    return issuer.replaceAll('%23', '#').replaceAll('%25', '%');
  }
}

/** What a component knows of the request. Nothing here is forgeable by the browser. */
export class Context {
  /** @param {WitContext} ctx */
  constructor(ctx) {
    /** Normalised request path, e.g. `/events/42`. */
    this.path = ctx.path;
    /** Route parameters as `[name, value]` pairs. @type {[string, string][]} */
    this.params = ctx.params;
    /** Query parameters as `[name, value]` pairs, in order. @type {[string, string][]} */
    this.queryPairs = ctx.query;
    /** BCP 47 language tag chosen for the response, e.g. `en-GB`. */
    this.locale = ctx.locale;
    /** Not for reusable components: it differs on every request. */
    this.requestId = ctx.requestId;
    /** @type {User | undefined} */
    this.user = ctx.user ? new User(ctx.user) : undefined;
  }

  /** The route parameter `name` (e.g. `id` for `/events/{id}`), if present. @param {string} name */
  param(name) {
    return lookup(this.params, name);
  }

  /** The first query string parameter `name`, if present. @param {string} name */
  query(name) {
    return lookup(this.queryPairs, name);
  }
}

/** @param {[string, string][]} pairs @param {string} name @returns {string | undefined} */
function lookup(pairs, name) {
  const found = pairs.find(([k]) => k === name);
  return found ? found[1] : undefined;
}
