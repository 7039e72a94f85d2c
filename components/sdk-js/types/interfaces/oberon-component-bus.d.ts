declare module 'oberon:component/bus@0.2.0' {
  /**
   * Latest value of a subscribed topic, as JSON; none when the topic is absent
   * (its publisher failed, its data source was late) or was not declared.
   */
  export function get(topic: string): string | undefined;
  /**
   * New value for a declared topic, as JSON. Fails when the topic is not
   * declared in `publishes` or the value is not valid JSON.
   */
  export function publish(topic: string, value: string): void;
}
