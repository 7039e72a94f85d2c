// Logging to the host's structured log (tagged there with component and request).

/** @typedef {import('oberon:component/log@0.2.0').Level} Level */

/**
 * The log helpers over the contract's raw `log` function.
 * @param {(level: Level, message: string) => void} raw
 */
export function logger(raw) {
  return {
    /** @param {Level} level @param {string} message */
    log: (level, message) => raw(level, String(message)),
    /** @param {string} message */
    debug: (message) => raw('debug', String(message)),
    /** @param {string} message */
    info: (message) => raw('info', String(message)),
    /** @param {string} message */
    warn: (message) => raw('warn', String(message)),
    /** @param {string} message */
    error: (message) => raw('error', String(message)),
  };
}
