/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  // The fault scenarios and the browser tests run on their own: `npm run test:faults`, `test:browser`.
  testPathIgnorePatterns: ['/node_modules/', '/test/faults/', '/test/browser/'],
  transform: {
    // Type checking is done once by `npm run typecheck`; here it would only slow every run.
    '^.+\\.ts$': ['ts-jest', { diagnostics: false }],
  },
  globalSetup: '<rootDir>/test/helpers/global-setup.ts',
  globalTeardown: '<rootDir>/test/helpers/global-teardown.ts',
  testTimeout: 60_000,
  maxWorkers: 2,
};
