// The package version, read once from package.json (two levels above dist/src/util/ and src/util/
// alike): the CLI prints it, and the Kubernetes strategy sends it in its User-Agent.
import { readFileSync } from 'node:fs';

function read(): string {
  for (const rel of ['../../../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8'));
      if (pkg.name === 'foundation-cluster' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // not there: try the next candidate
    }
  }
  return 'unknown';
}

/** `version` of foundation-cluster's package.json, or 'unknown' when it cannot be read. */
export const VERSION = read();
