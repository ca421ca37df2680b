/** `npm run test:faults`: the fault scenarios (test/faults), each with its own processes and Redis. */
const base = require('./jest.config');

module.exports = {
  ...base,
  roots: ['<rootDir>/test/faults'],
  testPathIgnorePatterns: [],
  maxWorkers: 1,
};
