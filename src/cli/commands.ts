import type { Command } from 'commander';
import type { RunContext } from './main.js';
import { registerInspect } from './inspect.js';
import { registerPack } from './pack.js';
import { register as registerServe } from './serve.js';
import { registerUnpack } from './unpack.js';
import { registerVerify } from './verify.js';

/**
 * Each command module exports one `register(program, ctx)`. A command is listed
 * here only once it works end to end.
 */
export type RegisterCommand = (program: Command, ctx: RunContext) => void;

export const COMMANDS: RegisterCommand[] = [registerPack, registerUnpack, registerVerify, registerInspect, registerServe];
