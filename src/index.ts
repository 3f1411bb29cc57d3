// The library's public surface.
export * from './errors.js';
export * from './oci/index.js';
export * from './content/index.js';
export * from './config/index.js';
export * from './server/index.js';
export { main } from './cli/main.js';
export { VERSION } from './version.js';
