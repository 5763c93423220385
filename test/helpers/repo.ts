// Where the repository is, seen from a compiled test file, and what its docs contain: shared by
// the tests that keep docs, package contents and the public API in sync.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package's npm name (also what doc examples import). */
export const PACKAGE_NAME = 'foundation-cluster';

/**
 * The repository root: the nearest directory above this (compiled) file holding the package's
 * package.json. Walks rather than counts, so a build into another outDir works too.
 */
export function repoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = path.join(dir, 'package.json');
    if (existsSync(pkg) && JSON.parse(readFileSync(pkg, 'utf8')).name === PACKAGE_NAME) return dir;
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`package.json of "${PACKAGE_NAME}" not found above ${dir}`);
    dir = up;
  }
}

/** README.md and every docs/*.md, as paths relative to the root, in a stable order. */
export function docFiles(root = repoRoot()): string[] {
  const docs = readdirSync(path.join(root, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .sort()
    .map((f) => `docs/${f}`);
  return ['README.md', ...docs];
}

export interface CodeBlock {
  /** The markdown file, relative to the root. */
  file: string;
  /** 1-based index among that file's blocks of the same language. */
  index: number;
  /** 1-based line of the first code line (after the opening fence). */
  line: number;
  /** What follows the language on the fence line (`no-check`, ...). */
  flags: string[];
  code: string;
}

/** The fenced blocks of `file` whose language is one of `langs` (``` or ~~~ fences, any length). */
export function codeBlocks(file: string, langs: string[], root = repoRoot()): CodeBlock[] {
  const lines = readFileSync(path.join(root, file), 'utf8').split(/\r?\n/);
  const out: CodeBlock[] = [];
  let open:
    | { fence: string; lang: string; flags: string[]; line: number; body: string[] }
    | undefined;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (open) {
      if (line.trim().startsWith(open.fence) && line.trim().replaceAll(open.fence[0]!, '') === '') {
        if (langs.includes(open.lang)) {
          out.push({
            file,
            index: out.length + 1,
            line: open.line,
            flags: open.flags,
            code: open.body.join('\n'),
          });
        }
        open = undefined;
      } else open.body.push(line);
      continue;
    }
    const m = /^\s*(`{3,}|~{3,})\s*([\w-]*)\s*(.*)$/.exec(line);
    if (m) {
      open = {
        fence: m[1]!,
        lang: m[2]!,
        flags: m[3]!.split(/\s+/).filter(Boolean),
        line: i + 2,
        body: [],
      };
    }
  }
  return out;
}
