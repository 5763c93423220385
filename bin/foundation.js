#!/usr/bin/env node
// The `foundation` command. The CLI itself is TypeScript compiled to dist/; this file only finds it.
import { existsSync } from 'node:fs';

const main = new URL('../dist/src/cli/main.js', import.meta.url);
if (!existsSync(main)) {
  process.stderr.write(
    'foundation: the compiled CLI (dist/src/cli/main.js) is missing. Run `npm run build` first.\n',
  );
  process.exit(1);
}
const { run } = await import(main.href);
run(process.argv.slice(2));
