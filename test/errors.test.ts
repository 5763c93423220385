// The error registry and its documentation stay in sync: docs/errors.md has exactly one
// `## FND_ERR_...` section per code of src/errors.ts, and every FoundationError carries the
// registry's advice in its message and keeps its code when serialised for the wire.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  ERRORS,
  type ErrorCode,
  FoundationError,
  isErrorCode,
  isFoundationError,
  serializeError,
} from '../src/errors.js';

const CODES = Object.keys(ERRORS) as ErrorCode[];

/**
 * The repository root: the nearest directory above this (compiled) file holding the package's
 * package.json. From dist/test/errors.test.js that is two levels up; from a build into another
 * outDir inside the repository it is further, so walk rather than count.
 */
function repoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = path.join(dir, 'package.json');
    if (existsSync(pkg) && JSON.parse(readFileSync(pkg, 'utf8')).name === 'foundation-cluster')
      return dir;
    const up = path.dirname(dir);
    if (up === dir)
      throw new Error('package.json of "foundation-cluster" not found above the test file');
    dir = up;
  }
}

interface Section {
  code: string;
  body: string;
}

/** Splits docs/errors.md into its `## FND_ERR_...` sections (heading code + text until the next heading). */
function docSections(): { sections: Section[]; malformed: string[] } {
  const text = readFileSync(path.join(repoRoot(), 'docs', 'errors.md'), 'utf8');
  const sections: Section[] = [];
  const malformed: string[] = [];
  let current: Section | undefined;
  for (const line of text.split(/\r?\n/)) {
    if (/^#{1,2} /.test(line)) {
      current = undefined;
      const m = /^## (FND_ERR_[A-Z0-9_]+)$/.exec(line.trimEnd());
      if (m) {
        current = { code: m[1]!, body: '' };
        sections.push(current);
      } else if (line.includes('FND_ERR_')) malformed.push(line);
      continue;
    }
    if (current) current.body += `${line}\n`;
  }
  return { sections, malformed };
}

describe('error registry and docs/errors.md', () => {
  it('has exactly one `## FND_ERR_...` section per registry code, and none for unknown codes', () => {
    const { sections, malformed } = docSections();
    assert.deepEqual(
      malformed,
      [],
      'headings that mention a code must be exactly `## FND_ERR_...`',
    );
    const documented = sections.map((s) => s.code);
    const duplicates = documented.filter((c, i) => documented.indexOf(c) !== i);
    assert.deepEqual(duplicates, [], `codes documented more than once: ${duplicates.join(', ')}`);
    const missing = CODES.filter((c) => !documented.includes(c));
    const unknown = documented.filter((c) => !isErrorCode(c));
    assert.ok(
      missing.length === 0 && unknown.length === 0,
      [
        'docs/errors.md and src/errors.ts disagree.',
        missing.length ? `In src/errors.ts but not documented: ${missing.join(', ')}` : '',
        unknown.length ? `Documented but not in src/errors.ts: ${unknown.join(', ')}` : '',
      ]
        .filter(Boolean)
        .join('\n'),
    );
    assert.deepEqual(new Set(documented), new Set(CODES));
  });

  it('says something under every code heading', () => {
    const empty = docSections()
      .sections.filter((s) => s.body.trim().length < 40)
      .map((s) => s.code);
    assert.deepEqual(empty, [], `sections with (almost) no text: ${empty.join(', ')}`);
  });

  it('registry codes are FND_ERR_ names and every message says what to do', () => {
    for (const code of CODES) {
      assert.match(code, /^FND_ERR_[A-Z0-9_]+$/);
      assert.ok(ERRORS[code].length > 10, `${code} has a registry text`);
    }
  });
});

describe('FoundationError', () => {
  it("ends every message with the registry's text, with or without a detail", () => {
    for (const code of CODES) {
      const bare = new FoundationError(code);
      assert.ok(bare.message.endsWith(ERRORS[code]), `${code}: "${bare.message}"`);
      assert.ok(bare.message.includes(`[${code}]`), `${code}: message names its code`);
      const detailed = new FoundationError(code, 'what happened here', { n: 1 });
      assert.ok(detailed.message.startsWith('what happened here'), detailed.message);
      assert.ok(detailed.message.endsWith(ERRORS[code]), `${code}: "${detailed.message}"`);
      assert.equal(detailed.code, code);
      assert.equal(detailed.name, 'FoundationError');
      assert.deepEqual(detailed.data, { n: 1 });
      assert.ok(detailed instanceof Error);
      assert.ok(isFoundationError(detailed, code));
    }
  });

  it('keeps a cause when given one', () => {
    const cause = new Error('socket hang up');
    const err = new FoundationError('FND_ERR_LISTEN', 'cannot listen', undefined, { cause });
    assert.equal(err.cause, cause);
  });

  it('isFoundationError tells codes apart and refuses look-alikes', () => {
    const err = new FoundationError('FND_ERR_NODE_DOWN');
    assert.ok(isFoundationError(err));
    assert.ok(!isFoundationError(err, 'FND_ERR_UNKNOWN_NODE'));
    const lookAlike = Object.assign(new Error('x'), { code: 'FND_ERR_NODE_DOWN' });
    assert.ok(!isFoundationError(lookAlike));
  });

  it('isErrorCode accepts exactly the registry codes (not inherited property names)', () => {
    for (const code of CODES) assert.ok(isErrorCode(code), code);
    for (const other of ['FND_ERR_NOPE', 'toString', 'constructor', '__proto__', '', 42, null]) {
      assert.ok(!isErrorCode(other), String(other));
    }
  });
});

describe('serializeError', () => {
  it('keeps the code, message and data of every FoundationError, through JSON too', () => {
    for (const code of CODES) {
      const err = new FoundationError(code, `detail for ${code}`, { node: 'b', n: 2 });
      const wire = serializeError(err);
      assert.deepEqual(wire, { code, message: err.message, data: { node: 'b', n: 2 } });
      assert.deepEqual(JSON.parse(JSON.stringify(err)), wire);
      const back = FoundationError.fromWire(code, wire.message, { node: 'b', n: 2 });
      assert.equal(back.code, code);
      assert.equal(back.message, err.message, 'fromWire keeps the message as it was written');
    }
  });

  it('keeps a string code of a plain Error and falls back to ERR otherwise', () => {
    const sys = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), {
      code: 'ECONNREFUSED',
    });
    assert.deepEqual(serializeError(sys), {
      code: 'ECONNREFUSED',
      message: 'connect ECONNREFUSED 127.0.0.1:1',
    });
    assert.deepEqual(serializeError(new TypeError('bad')), { code: 'ERR', message: 'bad' });
    assert.deepEqual(serializeError(Object.assign(new Error('n'), { code: 7 })), {
      code: 'ERR',
      message: 'n',
    });
    assert.deepEqual(serializeError('plain string'), { code: 'ERR', message: 'plain string' });
  });
});
