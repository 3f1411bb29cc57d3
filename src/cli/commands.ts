import type { Command } from 'commander';
import type { RunContext } from './main.js';
import { register as serve } from './serve.js';

/**
 * Each command module exports one `register(program, ctx)`. A command is listed
 * here only once it works end to end.
 */
export type RegisterCommand = (program: Command, ctx: RunContext) => void;

export const COMMANDS: RegisterCommand[] = [serve];
