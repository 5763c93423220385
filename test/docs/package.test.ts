// What `npm pack` would publish: the compiled library, the CLI, README and docs, and nothing of
// the repository's tests, benchmarks, sources or source maps; every entry point of the exports map
// and the bin are in it. Also that the package is named and wired as the README says.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { PACKAGE_NAME, repoRoot } from '../helpers/repo.js';

interface PackResult {
  name: string;
  files: Array<{ path: string }>;
}

function pack(): PackResult {
  // --ignore-scripts: do not run `prepare` (a build) just to list the contents; the test suite
  // builds first. npm_config_* variables of an outer `npm test` would change what npm does.
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.toLowerCase().startsWith('npm_')),
  );
  const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
    cwd: repoRoot(),
    env,
    encoding: 'utf8',
  });
  const parsed = JSON.parse(out) as PackResult[];
  assert.equal(parsed.length, 1);
  return parsed[0]!;
}

describe('the npm package', () => {
  const root = repoRoot();
  const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'));

  it(`is named ${PACKAGE_NAME}, with the foundation CLI and a prepare build`, () => {
    assert.equal(pkg.name, PACKAGE_NAME);
    assert.deepEqual(Object.keys(pkg.bin), ['foundation']);
    assert.match(pkg.scripts.prepare, /tsc -p tsconfig\.build\.json/);
    assert.deepEqual(Object.keys(pkg.exports).sort(), [
      '.',
      './package.json',
      './testing',
      './thread',
    ]);
  });

  it('contains dist/src, bin, README and docs, and no tests, benchmarks, sources or maps', () => {
    const result = pack();
    assert.equal(result.name, PACKAGE_NAME);
    const files = result.files.map((f) => f.path).sort();
    const bad = files.filter(
      (f) =>
        !(
          f === 'package.json' ||
          f === 'README.md' ||
          f === 'LICENSE' ||
          /^bin\/[\w.-]+\.js$/.test(f) ||
          /^docs\/[\w.-]+\.md$/.test(f) ||
          /^dist\/src\/.+\.(js|d\.ts)$/.test(f)
        ),
    );
    assert.deepEqual(bad, [], 'files that do not belong in the package');
    assert.ok(!files.some((f) => f.endsWith('.map')), 'source maps point at sources not shipped');
    for (const f of ['README.md', 'bin/foundation.js', 'docs/architecture.md']) {
      assert.ok(files.includes(f), `${f} missing from the package`);
    }
    // Every file the exports map and the bin point at is in the package.
    const targets: string[] = [pkg.main, pkg.types, ...Object.values<string>(pkg.bin)];
    for (const entry of Object.values<string | Record<string, string>>(pkg.exports)) {
      if (typeof entry === 'string') targets.push(entry);
      else targets.push(...Object.values(entry));
    }
    for (const t of targets) {
      const rel = path.posix.normalize(t);
      assert.ok(files.includes(rel), `${t} (exports/bin/main) is not in the package`);
    }
    // Every compiled module has its declarations next to it.
    for (const js of files.filter((f) => f.startsWith('dist/src/') && f.endsWith('.js'))) {
      assert.ok(files.includes(js.replace(/\.js$/, '.d.ts')), `${js} has no .d.ts`);
    }
  });
});
