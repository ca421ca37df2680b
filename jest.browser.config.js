/**
 * `npm run test:browser`: the dashboard in Debian's Chromium (playwright-core) against real
 * engines. Builds the dashboard first; one file at a time, as each runs a browser and an engine.
 */
const base = require('./jest.config');

module.exports = {
  ...base,
  roots: ['<rootDir>/test/browser'],
  testPathIgnorePatterns: ['/node_modules/'],
  globalSetup: '<rootDir>/test/browser/global-setup.ts',
  maxWorkers: 1,
  testTimeout: 180_000,
};
