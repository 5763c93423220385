#!/usr/bin/env node
import { spawnSync } from 'node:child_process';
// Runs every compiled test file with Node's built-in test runner. Unit tests (fast, in-memory) and
// integration tests (real processes on loopback) both run; `--unit` runs only the former.
// Files run two at a time, except SOLO ones, which run afterwards one at a time: their node
// processes must not be starved by a neighbouring file (a failure detector takes a process that got
// no CPU for a second or so for a dead one, and these files assert that no one was taken for dead
// wrongly, or depend on it).
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..', 'dist', 'test');
const SOLO = ['network-faults', 'cluster', 'actors', 'dist'].map((f) =>
  path.join('integration', `${f}.test.js`),
);
/** A test that runs longer than this fails instead of holding up the run (the longest take ~40 s). */
const TEST_TIMEOUT_MS = 300_000;
const unitOnly = process.argv.includes('--unit');
const files = [];
(function walk(dir) {
  for (const name of readdirSync(dir).sort()) {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) walk(full);
    else if (name.endsWith('.test.js')) files.push(full);
  }
})(root);
const selected = unitOnly
  ? files.filter((f) => !f.includes(`${path.sep}integration${path.sep}`))
  : files;
if (selected.length === 0) {
  console.error(`no test files under ${root}; run \`npm run build\` first`);
  process.exit(1);
}
const solo = selected.filter((f) => SOLO.includes(path.relative(root, f)));
const together = selected.filter((f) => !solo.includes(f));

function run(concurrency, list) {
  if (list.length === 0) return 0;
  const r = spawnSync(
    process.execPath,
    ['--test', `--test-concurrency=${concurrency}`, `--test-timeout=${TEST_TIMEOUT_MS}`, ...list],
    { stdio: 'inherit' },
  );
  return r.status ?? 1;
}

const first = run(2, together);
const second = run(1, solo);
process.exit(first || second);
