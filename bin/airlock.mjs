#!/usr/bin/env node
// Thin bin: map main()'s result to process.exitCode; SIGINT/SIGTERM abort the running command.
import { main } from '../dist/cli/main.js';
import { processIO } from '../dist/cli/io.js';

const controller = new AbortController();
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.once(sig, () => controller.abort(new Error(`interrupted by ${sig}`)));
}
process.exitCode = await main(process.argv.slice(2), processIO(controller.signal));
