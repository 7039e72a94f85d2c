declare module 'oberon:component/types@0.2.0' {
  /**
   * The signed-in user, present only when the gateway authenticated the request.
   */
  export interface User {
    id: string,
    roles: Array<string>,
  }
  /**
   * What a component knows of the request. Nothing here is forgeable by the
   * browser: the user comes from the gateway's verified assertion.
   */
  export interface Context {
    /**
     * Normalised request path, e.g. `/events/42`.
     */
    path: string,
    /**
     * Route parameters, e.g. `[("id", "42")]` for `/events/{id}`.
     */
    params: Array<[string, string]>,
    /**
     * Query string parameters, in order.
     */
    query: Array<[string, string]>,
    /**
     * BCP 47 language tag chosen for the response, e.g. `en-GB`.
     */
    locale: string,
    user?: User,
    requestId: string,
  }
  /**
   * One element for the document head: `<tag attr="v">content</tag>`.
   * The host accepts only `title`, `meta`, `link`, `script` and `style`
   * and escapes every attribute value.
   */
  export interface HeadEntry {
    tag: string,
    attrs: Array<[string, string]>,
    content?: string,
  }
  /**
   * The output of one render: HTML for the component's slot, plus head entries
   * the layout merges with those of the other components.
   */
  export interface Fragment {
    html: string,
    head: Array<HeadEntry>,
  }
  /**
   * How cacheable a component's output is. The least cacheable component
   * on a page decides the page's class. An enum rather than a string, so a
   * typo is a build error for the author instead of a render-time surprise.
   * # Variants
   * 
   * ## `"public"`
   * 
   * The same for everyone.
   * ## `"volatile"`
   * 
   * The same for everyone but changes quickly (remaining tickets, prices).
   * ## `"personal"`
   * 
   * Depends on who is asking; never shared by a cache.
   */
  export type Cacheability = 'public' | 'volatile' | 'personal';
  /**
   * Read once per component version, when it is loaded, never per request.
   */
  export interface Metadata {
    name: string,
    /**
     * Topics the component reads with `bus.get`. Reading any other topic gives nothing.
     */
    subscribes: Array<string>,
    /**
     * Topics the component writes with `bus.publish`. Publishing any other is an error.
     */
    publishes: Array<string>,
    /**
     * Client-side files shipped with the component (paths relative to its asset root).
     */
    assets: Array<string>,
    cacheability: Cacheability,
    /**
     * Seconds for which the host may reuse a render's whole outcome (its fragment,
     * head entries and published topics) for another request with the same inputs:
     * this component version, the slot's props, the values of the subscribed
     * topics, and the context's path, params, query and locale. None (or 0): every
     * request renders afresh. At most 86400.
     * 
     * A component that declares it must render the same outcome from the same
     * inputs: it must not read a clock or randomness, nor show the request id or
     * anything else outside those inputs. The host never reuses a render for a
     * signed-in user, for a `personal` component, or for a canary.
     */
    reuse?: number,
  }
}
