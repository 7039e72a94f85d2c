/// <reference path="./interfaces/oberon-component-bus.d.ts" />
/// <reference path="./interfaces/oberon-component-log.d.ts" />
/// <reference path="./interfaces/oberon-component-types.d.ts" />
declare module 'oberon:component/component@0.2.0' {
  export type Context = import('oberon:component/types@0.2.0').Context;
  export type Fragment = import('oberon:component/types@0.2.0').Fragment;
  export type Metadata = import('oberon:component/types@0.2.0').Metadata;
  export type * as OberonComponentBus020 from 'oberon:component/bus@0.2.0'; // import oberon:component/bus@0.2.0
  export type * as OberonComponentLog020 from 'oberon:component/log@0.2.0'; // import oberon:component/log@0.2.0
  export type * as OberonComponentTypes020 from 'oberon:component/types@0.2.0'; // import oberon:component/types@0.2.0
  export function describe(): Metadata;
  /**
  * Render the component for one request. `props` is the JSON object the page
  * configuration gives this slot.
  */
  export function render(ctx: Context, props: string): Fragment;
}
