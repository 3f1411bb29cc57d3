export * from './digest.js';
export * from './manifest.js';
export * from './media-types.js';
export * from './reference.js';
export * from "./referrers.js";
