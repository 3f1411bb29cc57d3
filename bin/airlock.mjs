#!/usr/bin/env node
// Thin bin: map main()'s result to process.exitCode; SIGINT/SIGTERM abort the running command.
import { main } from '../dist/cli/main.js';
import { processIO } from '../dist/cli/io.js';

// A closed pipe (`airlock inspect … | head`) is not an error worth a stack trace.
process.stdout.on('error', (e) => {
  if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw e;
});

const controller = new AbortController();
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.once(sig, () => controller.abort(new Error(`interrupted by ${sig}`)));
}
process.exitCode = await main(process.argv.slice(2), processIO(controller.signal));
