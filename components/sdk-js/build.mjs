#!/usr/bin/env node
// Builds a JavaScript Oberon component: a project's ES modules -> one WebAssembly
// component for the world `component` of the contract in `--wit`.
//
//   node build.mjs --project DIR --wit WIT_DIR --out FILE.wasm [--entry src/index.js] [--sdk SDK_DIR]
//
// Inputs: DIR, the project: its entry module (default `src/index.js`) exports
// `describe` and `render` (`defineComponent` gives both) and imports the SDK as
// `../oberon/sdk-js/index.js` (a path from the project root: `oberon/sdk-js/`);
// WIT_DIR, the contract's folder (`components/wit/v0.2.0`, or a scaffold's
// `oberon/wit`). Output: FILE.wasm, written whole or not at all; nothing else is
// left behind. Exit status 0 on success, 1 with the reason on stderr otherwise.
//
// How: the project is copied into a fresh staging folder (without node_modules,
// .git, target, .wasm files, and the top-level build and .oberon); when it has no `oberon/sdk-js/` of its own (a
// scaffold vendors one), SDK_DIR (default: this package's `src/`) is put there. ComponentizeJS runs
// in that folder, so StarlingMonkey resolves the relative imports itself while it
// pre-initialises (Wizer): no bundler. Bare specifiers (npm packages) are not
// resolved: vendor such code into the project as relative modules.
//
// Every WASI feature ComponentizeJS can leave out is left out (stdio, random,
// clocks, http, fetch-event): the component imports only the contract's
// interfaces, and the renderer links nothing else for it per instance. So
// `console.log` prints nothing (use the SDK's `log`), `Math.random` is seeded at
// build time, and `Date.now()` is not the wall clock: a render does not need them,
// and a reusable one must not use them.

import { componentize } from '@bytecodealliance/componentize-js';
import { cp, mkdtemp, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

/** The WASI features of ComponentizeJS 0.19 that the renderer has no use for. */
export const DISABLED_FEATURES = ['stdio', 'random', 'clocks', 'http', 'fetch-event'];
/** The world every Oberon component targets. */
export const WORLD = 'component';
/** Where the SDK sits in a project (and in the staging folder). */
export const SDK_PATH = join('oberon', 'sdk-js');

const SKIP = new Set(['node_modules', '.git', 'target']);
/** Not sources either, at the project's top: the CLI's build output and tool installs. */
const SKIP_AT_TOP = new Set(['build', '.oberon']);
const here = dirname(fileURLToPath(import.meta.url));

/**
 * Builds the component of `projectDir` into `out`.
 * @param {{projectDir: string, witDir: string, out: string, entry?: string, sdkDir?: string}} options
 *   `entry` is relative to the project (default `src/index.js`); `sdkDir` is the SDK
 *   used when the project vendors none (default: this package's `src/`).
 * @returns {Promise<{bytes: number}>}
 */
export async function buildComponent({ projectDir, witDir, out, entry = 'src/index.js', sdkDir = join(here, 'src') }) {
  projectDir = resolve(projectDir);
  witDir = resolve(witDir);
  out = resolve(out);
  const entryPath = resolve(projectDir, entry);
  if (relative(projectDir, entryPath).startsWith('..')) {
    throw new Error(`entry ${entry} is outside the project ${projectDir}`);
  }
  await mustExist(entryPath, 'entry module');
  await mustExist(join(witDir, `${WORLD}.wit`), 'contract');

  const staging = await mkdtemp(join(tmpdir(), 'oberon-js-build-'));
  const previousDir = process.cwd();
  try {
    await cp(projectDir, staging, {
      recursive: true,
      filter: (src) =>
        !SKIP.has(basename(src)) && !SKIP_AT_TOP.has(relative(projectDir, src)) && !src.endsWith('.wasm'),
    });
    if (!(await exists(join(projectDir, SDK_PATH)))) {
      await cp(sdkDir, join(staging, SDK_PATH), { recursive: true });
    }
    // ComponentizeJS maps its working directory as the guest's root when the source
    // is inside it: that is what lets `../oberon/sdk-js/index.js` resolve.
    process.chdir(staging);
    const { component } = await componentize({
      sourcePath: join(staging, relative(projectDir, entryPath)),
      witPath: witDir,
      worldName: WORLD,
      disableFeatures: DISABLED_FEATURES,
    });
    process.chdir(previousDir);
    const partial = `${out}.partial`;
    await writeFile(partial, component);
    await rename(partial, out);
    return { bytes: component.byteLength };
  } finally {
    process.chdir(previousDir);
    await rm(staging, { recursive: true, force: true });
  }
}

/** @param {string} path @param {string} what */
async function mustExist(path, what) {
  if (!(await exists(path))) {
    throw new Error(`${what} ${path} does not exist`);
  }
}

/** @param {string} path */
async function exists(path) {
  return stat(path).then(() => true, () => false);
}

async function main() {
  const { values } = parseArgs({
    options: {
      project: { type: 'string' },
      wit: { type: 'string' },
      out: { type: 'string' },
      entry: { type: 'string', default: 'src/index.js' },
      sdk: { type: 'string' },
    },
  });
  if (!values.project || !values.wit || !values.out) {
    console.error('usage: node build.mjs --project DIR --wit WIT_DIR --out FILE.wasm [--entry src/index.js] [--sdk SDK_DIR]');
    process.exit(2);
  }
  const started = Date.now();
  try {
    const { bytes } = await buildComponent({
      projectDir: values.project,
      witDir: values.wit,
      out: values.out,
      entry: values.entry,
      ...(values.sdk ? { sdkDir: values.sdk } : {}),
    });
    console.log(`built ${values.out} (${(bytes / 1048576).toFixed(1)} MiB) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  } catch (e) {
    console.error(`build failed: ${e instanceof Error ? e.message : e}`);
    process.exit(1);
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await main();
}
