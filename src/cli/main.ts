// Entry point of the `foundation` command (bin/foundation.js imports this file; running it with
// `node dist/src/cli/main.js` works too). It only dispatches: `start` runs one node in the
// foreground, `demo` spawns a small cluster of `start` processes and shows failure detection.
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { VERSION } from '../util/version.js';
import { demoCommand } from './demo.js';
import { startCommand } from './start.js';
import { USAGE } from './usage.js';

/** Runs one command and resolves with the process exit code. */
export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'start':
      return startCommand(rest);
    case 'demo':
      return demoCommand(rest);
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE);
      return 0;
    case 'version':
    case '--version':
    case '-v':
      process.stdout.write(`foundation ${VERSION}\n`);
      return 0;
    case undefined:
      process.stderr.write(USAGE);
      return 2;
    default:
      process.stderr.write(`foundation: unknown command "${command}". Run "foundation help".\n`);
      return 2;
  }
}

/** Exits once what we wrote has reached stdout (pipes may be asynchronous on some platforms). */
function exitWhenFlushed(code: number): void {
  process.exitCode = code;
  if (process.stdout.writableLength === 0) process.exit(code);
  const force = setTimeout(() => process.exit(code), 1000);
  process.stdout.once('drain', () => {
    clearTimeout(force);
    process.exit(code);
  });
}

/** What bin/foundation.js calls. */
export function run(argv: string[] = process.argv.slice(2)): void {
  main(argv).then(exitWhenFlushed, (err: unknown) => {
    process.stderr.write(
      `foundation: ${err instanceof Error ? (err.stack ?? err.message) : err}\n`,
    );
    exitWhenFlushed(1);
  });
}

function isEntryPoint(): boolean {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntryPoint()) run();
