#!/usr/bin/env node
// TypeScript declarations of the contract, generated from the WIT by the pinned jco
// (`jco guest-types`): the types a component's exports and the SDK's imports have.
//
//   node scripts/types.mjs           regenerate types/ from ../wit/v0.2.0
//   node scripts/types.mjs --check   fail (exit 1) if the committed types/ differ
//
// They are committed, not hand-written, and CI runs the check so they cannot drift
// from the contract or from the jco that package-lock.json pins.

import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm, cp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const wit = join(root, '..', 'wit', 'v0.2.0');
const committed = join(root, 'types');
const check = process.argv.includes('--check');

const fresh = await mkdtemp(join(tmpdir(), 'oberon-js-types-'));
try {
  const jco = join(root, 'node_modules', '.bin', 'jco');
  const run = spawnSync(jco, ['guest-types', wit, '--world-name', 'component', '--out-dir', fresh, '--quiet'], {
    encoding: 'utf8',
  });
  if (run.status !== 0) {
    console.error(`jco guest-types failed (run npm ci in ${root} first?):\n${run.stderr || run.error}`);
    process.exit(1);
  }
  if (check) {
    const differences = await compare(fresh, committed);
    if (differences.length > 0) {
      console.error(`types/ is not what jco generates from ${relative(root, wit)}:`);
      for (const d of differences) console.error(`  ${d}`);
      console.error('run `npm run types` in components/sdk-js and commit the result');
      process.exit(1);
    }
    console.log('types/ matches the contract');
  } else {
    await rm(committed, { recursive: true, force: true });
    await cp(fresh, committed, { recursive: true });
    console.log(`wrote ${relative(process.cwd(), committed) || committed}`);
  }
} finally {
  await rm(fresh, { recursive: true, force: true });
}

/** Files that differ, are missing, or are extra in `actual` against `expected`. */
async function compare(expected, actual) {
  const want = await files(expected);
  const have = await files(actual).catch(() => []);
  const out = [];
  for (const f of want) {
    if (!have.includes(f)) out.push(`missing ${f}`);
    else if ((await readFile(join(expected, f), 'utf8')) !== (await readFile(join(actual, f), 'utf8'))) out.push(`differs ${f}`);
  }
  for (const f of have) if (!want.includes(f)) out.push(`extra ${f}`);
  return out;
}

/** Paths of the files under `dir`, relative to it, sorted. */
async function files(dir) {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath ?? e.path, e.name)))
    .sort();
}
