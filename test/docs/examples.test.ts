// Every ```ts block of README.md and docs/*.md type-checks against the built package under the
// strictest settings a user may have (strict, noUncheckedIndexedAccess, exactOptionalPropertyTypes),
// so the docs cannot drift from the API. Each block is its own module in a temporary project whose
// `foundation-cluster` imports resolve to dist/src (the package as published). A block marked
// ```ts no-check is skipped: keep those rare, and say next to the block why it cannot compile.
//
// Blocks are often fragments of a larger program. Rather than repeat the same setup in every one,
// each block may use, without declaring them, the names of the prelude below: the package's
// exported values, and a few variables that stand for "a node you started" and the like. A name a block
// declares or imports itself takes precedence over the prelude's.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import ts from 'typescript';
import * as api from '../../src/index.js';
import { type CodeBlock, codeBlocks, docFiles, PACKAGE_NAME, repoRoot } from '../helpers/repo.js';

/**
 * What a doc block may use without declaring it: these variables, typed as what the docs say they
 * are, and the package's exported values (`Foundation`, `Supervisor`, ...) as globals. Types are
 * not: a block that names a type imports it, as a user's file would.
 */
const PRELUDE_VARIABLES = `
  /** A started node (\`await Foundation.start()\`). */
  const node: FoundationNode;
  /** Another started node of the same cluster. */
  const other: FoundationNode;
  /** Some actor's pid. */
  const pid: Pid;
  /** Some message. */
  const msg: unknown;
`;

function preludeSource(): string {
  const values = Object.keys(api)
    .sort()
    .map((n) => `  const ${n}: typeof import('${PACKAGE_NAME}').${n};`);
  return [
    `import type { FoundationNode, Pid } from '${PACKAGE_NAME}';`,
    'declare global {',
    ...values,
    PRELUDE_VARIABLES,
    '}',
    'export {};',
    '',
  ].join('\n');
}

/** The tsconfig of the temporary project: a user's strictest settings, the package from dist. */
function compilerOptions(root: string): ts.CompilerOptions {
  const dist = path.join(root, 'dist', 'src');
  return {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    lib: ['lib.es2022.d.ts'],
    types: ['node'],
    typeRoots: [path.join(root, 'node_modules', '@types')],
    strict: true,
    noUncheckedIndexedAccess: true,
    exactOptionalPropertyTypes: true,
    noImplicitOverride: true,
    noFallthroughCasesInSwitch: true,
    skipLibCheck: true,
    noEmit: true,
    esModuleInterop: true,
    paths: {
      [PACKAGE_NAME]: [path.join(dist, 'index.d.ts')],
      [`${PACKAGE_NAME}/testing`]: [path.join(dist, 'testing.d.ts')],
      [`${PACKAGE_NAME}/thread`]: [path.join(dist, 'runtime', 'thread-worker.d.ts')],
      // A dependency of the package that its users import too (config schemas are zod schemas).
      zod: [path.join(root, 'node_modules', 'zod', 'index.d.ts')],
    },
  };
}

interface Checked {
  block: CodeBlock;
  fileName: string;
}

/** Type-checks every block; returns one readable line per error, naming the doc and the block. */
function checkBlocks(blocks: CodeBlock[]): string[] {
  const root = repoRoot();
  const dir = mkdtempSync(path.join(tmpdir(), 'fnd-doc-examples-'));
  try {
    writeFileSync(path.join(dir, 'package.json'), '{"type":"module"}\n');
    const prelude = path.join(dir, 'prelude.d.ts');
    writeFileSync(prelude, preludeSource());
    const checked: Checked[] = [];
    for (const block of blocks) {
      const name = `${block.file.replace(/[^\w]+/g, '_')}_${block.index}.ts`;
      const fileName = path.join(dir, 'blocks', name);
      mkdirSync(path.dirname(fileName), { recursive: true });
      // `export {}` makes every block a module: blocks never see each other's declarations, and
      // top-level await works as in an ESM program.
      writeFileSync(fileName, `${block.code}\nexport {};\n`);
      checked.push({ block, fileName });
    }
    const program = ts.createProgram(
      [prelude, ...checked.map((c) => c.fileName)],
      compilerOptions(root),
    );
    const byFile = new Map(checked.map((c) => [c.fileName, c.block]));
    const problems: string[] = [];
    for (const d of ts.getPreEmitDiagnostics(program)) {
      const text = ts.flattenDiagnosticMessageText(d.messageText, '\n  ');
      const block = d.file ? byFile.get(d.file.fileName) : undefined;
      if (!d.file || !block) {
        problems.push(`(setup) ${d.file?.fileName ?? ''} TS${d.code}: ${text}`);
        continue;
      }
      const { line, character } = d.file.getLineAndCharacterOfPosition(d.start ?? 0);
      problems.push(
        `${block.file}:${block.line + line} (ts block #${block.index}, column ${character + 1}) TS${d.code}: ${text}`,
      );
    }
    return problems;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('documentation examples', () => {
  const all = docFiles().flatMap((f) => codeBlocks(f, ['ts', 'typescript']));
  const checked = all.filter((b) => !b.flags.includes('no-check'));

  it('README.md and docs/*.md have ts blocks, and few are exempt from checking', () => {
    assert.ok(checked.length >= 30, `only ${checked.length} checked blocks found`);
    const skipped = all.filter((b) => b.flags.includes('no-check'));
    assert.ok(
      skipped.length <= 5,
      `too many \`\`\`ts no-check blocks (${skipped.length}): ${skipped.map((b) => `${b.file}:${b.line}`).join(', ')}`,
    );
  });

  it('every ```ts block type-checks under strict against the built package', () => {
    const problems = checkBlocks(checked);
    assert.deepEqual(
      problems,
      [],
      `doc examples that do not compile (fix the example, or the API):\n${problems.join('\n')}`,
    );
  });

  it('a block that does not compile is reported with its file and block', () => {
    const bad: CodeBlock = {
      file: 'docs/example.md',
      index: 2,
      line: 10,
      flags: [],
      code: `const n: number = 'not a number';`,
    };
    const problems = checkBlocks([bad]);
    assert.equal(problems.length, 1);
    assert.match(problems[0]!, /^docs\/example\.md:10 \(ts block #2, column 7\) TS2322: /);
  });
});
