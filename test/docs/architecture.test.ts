// docs/architecture.md stays true to the code the way docs/errors.md stays true to the error
// registry: every folder under src/ is described there (named as `src/<folder>/`), and every
// named export of src/index.ts (the public API) is named there in backticks.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import ts from 'typescript';
import { repoRoot } from '../helpers/repo.js';

/** Every directory under src/, as `src/a/b/` paths, sorted. */
function srcFolders(root: string): string[] {
  const out: string[] = [];
  (function walk(rel: string) {
    for (const e of readdirSync(path.join(root, rel), { withFileTypes: true })) {
      if (!e.isDirectory()) continue;
      const sub = `${rel}/${e.name}`;
      out.push(`${sub}/`);
      walk(sub);
    }
  })('src');
  return out.sort();
}

/** The names src/index.ts exports (values and types; `x as y` counts as `y`). */
export function indexExports(root: string): string[] {
  const file = path.join(root, 'src', 'index.ts');
  const sf = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.ES2022, true);
  const names = new Set<string>();
  const exported = (n: ts.Node) =>
    ts.canHaveModifiers(n) &&
    (ts.getModifiers(n) ?? []).some((m) => m.kind === ts.SyntaxKind.ExportKeyword);
  for (const st of sf.statements) {
    if (ts.isExportDeclaration(st)) {
      assert.ok(
        st.exportClause && ts.isNamedExports(st.exportClause),
        'src/index.ts re-exports by name only (no `export *`)',
      );
      for (const el of st.exportClause.elements) names.add(el.name.text);
    } else if (ts.isVariableStatement(st) && exported(st)) {
      for (const d of st.declarationList.declarations) {
        if (ts.isIdentifier(d.name)) names.add(d.name.text);
      }
    } else if (
      (ts.isFunctionDeclaration(st) ||
        ts.isClassDeclaration(st) ||
        ts.isInterfaceDeclaration(st) ||
        ts.isTypeAliasDeclaration(st)) &&
      exported(st) &&
      st.name
    ) {
      names.add(st.name.text);
    }
  }
  return [...names].sort();
}

/** Whether `name` appears in backticks in `doc`, alone or at the start of a code span (`Pid<P>`, `Foundation.start`). */
function mentioned(doc: string, name: string): boolean {
  const escaped = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`\`${escaped}(\`|[^\\w\`][^\`]*\`)`).test(doc);
}

describe('docs/architecture.md', () => {
  const root = repoRoot();
  const doc = readFileSync(path.join(root, 'docs', 'architecture.md'), 'utf8');

  it('describes every folder under src/', () => {
    const folders = srcFolders(root);
    assert.ok(folders.includes('src/runtime/'), 'src/ walked');
    const missing = folders.filter((f) => !doc.includes(f));
    assert.deepEqual(
      missing,
      [],
      `folders not described in docs/architecture.md: ${missing.join(', ')}`,
    );
  });

  it('names every export of src/index.ts', () => {
    const names = indexExports(root);
    assert.ok(names.includes('Foundation') && names.includes('Pid'), 'exports parsed');
    const missing = names.filter((n) => !mentioned(doc, n));
    assert.deepEqual(
      missing,
      [],
      `exports of src/index.ts not named (in backticks) in docs/architecture.md: ${missing.join(', ')}`,
    );
  });

  it('the check itself: a name in backticks counts, a bare word or a longer name does not', () => {
    assert.ok(mentioned('see `Pid` here', 'Pid'));
    assert.ok(mentioned('`Pid<P>` and `Foundation.start()`', 'Pid'));
    assert.ok(mentioned('`Foundation.start()`', 'Foundation'));
    assert.ok(!mentioned('a Pid without backticks', 'Pid'));
    assert.ok(!mentioned('`PidLike`', 'Pid'));
  });
});
