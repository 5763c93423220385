#!/usr/bin/env node
import { spawnSync } from 'node:child_process';
// Runs every compiled test file with Node's built-in test runner. Unit tests (fast, in-memory) and
// integration tests (real processes on loopback) both run; `--unit` runs only the former.
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..', 'dist', 'test');
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
const r = spawnSync(
  process.execPath,
  ['--test', '--test-concurrency=2', '--test-timeout=300000', ...selected],
  {
    stdio: 'inherit',
  },
);
process.exit(r.status ?? 1);
