export * from './auth.js';
export * from './client.js';
export * from './repository.js';
export { repositoryScope, CATALOG_SCOPE } from './session.js';
