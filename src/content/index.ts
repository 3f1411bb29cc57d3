export * from './memory.js';
export * from './read.js';
export * from './storage.js';
