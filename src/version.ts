/** Kept in step with package.json by the test suite (test/version.test.ts). */
export const VERSION = '0.1.0';
