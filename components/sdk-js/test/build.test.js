// The build entry's argument checks (the componentization itself is exercised by
// building examples-js/, which takes seconds: see the README).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, writeFile, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

import { buildComponent } from '../build.mjs';

const wit = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'wit', 'v0.2.0');

test('a project without its entry module is refused, and nothing is written', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'sdk-js-test-'));
  await assert.rejects(
    buildComponent({ projectDir: dir, witDir: wit, out: join(dir, 'x.wasm') }),
    /entry module .*src\/index\.js does not exist/,
  );
  assert.deepEqual(await readdir(dir), []);
});

test('an entry outside the project and a missing contract are refused', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'sdk-js-test-'));
  await mkdir(join(dir, 'src'));
  await writeFile(join(dir, 'src', 'index.js'), 'export function describe() {}\n');
  await assert.rejects(
    buildComponent({ projectDir: dir, witDir: wit, out: join(dir, 'x.wasm'), entry: '../elsewhere.js' }),
    /outside the project/,
  );
  await assert.rejects(
    buildComponent({ projectDir: dir, witDir: dir, out: join(dir, 'x.wasm') }),
    /contract .*component\.wit does not exist/,
  );
});
