import { spawnSync } from 'node:child_process';
import { startingLogLevel } from '../../src/logger';
import { helpText, numberOption, parseCommandLine, UsageError } from '../../scripts/cli';
import { parseRange } from '../../scripts/rollups-rebuild';
import { parseArgs } from '../../scripts/simulate';
import { StartupError } from '../../src/startup-error';

const command = {
  usage: 'npm run example -- --name NAME [--count N] [--dry-run]',
  options: {
    name: { type: 'string', value: 'NAME', help: 'who' },
    count: { type: 'string', value: 'N', default: '3', help: 'how many' },
    'dry-run': { type: 'boolean', help: 'change nothing' },
  },
} as const;

const usageErrorOf = (run: () => unknown): UsageError => {
  try {
    run();
  } catch (err) {
    if (err instanceof UsageError) return err;
    throw err;
  }
  throw new Error('no UsageError');
};

describe('command lines', () => {
  test('when options are given, then their values are returned and absent ones take their defaults', () => {
    expect(parseCommandLine(['--name', 'a', '--dry-run'], command).values).toEqual({
      name: 'a',
      count: '3',
      'dry-run': true,
    });
    expect(parseCommandLine(['--name=b', '--count', '7'], command).values).toMatchObject({
      name: 'b',
      count: '7',
    });
  });

  test('when a number option is given a negative number, then it is its value, for its own range check', () => {
    expect(parseCommandLine(['--count', '-5', '--name', '-.5'], command).values).toMatchObject({
      count: '-5',
      name: '-.5',
    });
    // A flag takes no value; after -- nothing is an option's value.
    expect(() => parseCommandLine(['--dry-run', '-5'], command)).toThrow(
      /^Option '--dry-run' takes no value, not -5\nusage:/,
    );
    expect(
      parseCommandLine(['--', '--count', '-5'], { ...command, positionals: true }).positionals,
    ).toEqual(['--count', '-5']);
  });

  test.each([
    [['--nmae', 'a'], /Unknown option '--nmae'/],
    [['--name'], /--name <value>' argument missing/],
    [['--dry-run=yes'], /'--dry-run' does not take an argument/],
    [['stray'], /Unexpected argument 'stray'/],
    [['--name', 'a', '--name', 'b'], /Option '--name' is given twice: give it once/],
  ])(
    'when the command line is %j, then a UsageError names the problem and shows the usage',
    (argv, problem) => {
      const error = usageErrorOf(() => parseCommandLine(argv, command));
      expect(error).toBeInstanceOf(StartupError);
      expect(error.message).toMatch(problem);
      expect(error.message).toContain(`usage: ${command.usage}`);
    },
  );

  test('when help is asked for, then every option is listed with its value and default', () => {
    expect(helpText(command).split('\n')).toEqual([
      `usage: ${command.usage}`,
      '  --name NAME  who',
      '  --count N    how many (default 3)',
      '  --dry-run    change nothing',
      '  -h, --help   this text',
    ]);
  });

  test.each([
    ['12', {}, 12],
    ['0.5', {}, 0.5],
    ['.5', {}, 0.5],
    ['65535', { max: 65535, integer: true }, 65535],
  ])(
    'when a number option is %j within its limits, then it is that number',
    (text, limits, value) => {
      expect(numberOption('--n', text, limits)).toBe(value);
    },
  );

  test.each([
    ['-1', {}, '--n must be a non-negative number'],
    ['', {}, '--n must be a non-negative number'],
    ['ten', { min: 1, integer: true }, '--n must be an integer of at least 1'],
    ['1.5', { max: 9, integer: true }, '--n must be an integer from 0 to 9'],
    ['Infinity', {}, '--n must be a non-negative number'],
    // Written as a number setting is: a plain decimal, an integer in digits alone.
    ['5e-1', {}, '--n must be a non-negative number written in plain digits (5e-1 is not)'],
    ['0x10', {}, '--n must be a non-negative number written in plain digits (0x10 is not)'],
    [
      '1e3',
      { integer: true },
      '--n must be a non-negative integer written in plain digits (1e3 is not)',
    ],
  ])(
    'when a number option is %j, then the UsageError says what it must be',
    (text, limits, message) => {
      expect(usageErrorOf(() => numberOption('--n', text, limits)).message).toBe(message);
    },
  );
});

describe('rollups:rebuild range', () => {
  test('when the range has zones, then it widens to the whole hours that contain it', () => {
    expect(
      parseRange(['--from', '2024-03-01T00:30:00+01:00', '--to', '2024-03-01T05:10:00Z']),
    ).toEqual({
      from: new Date('2024-02-29T23:00:00Z'),
      to: new Date('2024-03-01T06:00:00Z'),
    });
  });

  test.each([
    [
      ['--from', 'yesterday', '--to', '2024-03-02T00:00:00Z'],
      /--from must be an RFC 3339 date-time/,
    ],
    [
      ['--from', '2024-03-01T00:00:00', '--to', '2024-03-02T00:00:00Z'],
      /--from must be an RFC 3339/,
    ],
    [['--from', '2024-03-01T00:00:00Z'], /^--to is required\nusage: npm run rollups:rebuild/],
    [[], /^--from is required/],
    [
      ['--to', '2024-03-01T00:00:00Z', '--from', '2024-03-02T00:00:00Z'],
      /^--from \(2024-03-02T00:00:00Z\) must be earlier than --to \(2024-03-01T00:00:00Z\)/,
    ],
    // Date.parse takes these (as 2024-03-01, and as a date-time); a reading's timestamp may not.
    [
      ['--from', '2024-02-30T00:00:00Z', '--to', '2024-03-02T00:00:00Z'],
      /^--from must be an RFC 3339 date-time with a zone offset, e.g. .*: 2024-02-30T00:00:00Z$/,
    ],
    [
      ['--from', '2024-03-01T00:00Z', '--to', '2024-03-02T00:00:00Z'],
      /^--from must be an RFC 3339/,
    ],
    [
      ['--from', '2024-03-01T00:00:00Z', '--to', '2024-03-02T00:00:00Z', '--days', '1'],
      /Unknown option '--days'/,
    ],
    [
      ['--from', '1900-01-01T00:00:00Z', '--to', '2024-03-02T00:00:00Z'],
      /--from must not be before 1970-01-01T00:00:00.000Z/,
    ],
    [
      ['--from', '2024-03-01T00:00:00Z', '--to', '2100-01-01T00:00:00Z'],
      /--to must be at most a day from now/,
    ],
  ])('when the arguments are %j, then a UsageError says what is wrong', (argv, message) => {
    expect(usageErrorOf(() => parseRange(argv)).message).toMatch(message);
  });
});

describe('simulator options', () => {
  test('when nothing is given, then the documented defaults apply', () => {
    expect(parseArgs([], {})).toEqual({
      url: 'http://127.0.0.1:3000',
      meters: 10,
      vehicles: 10,
      intervalS: 60,
      speed: 1,
      durationMs: Infinity,
      mode: 'interval',
      faulty: 0.05,
      drifting: 0,
      chargers: [{ ratedKw: 11, share: 1 }],
      // The engine's settings by their declared defaults (an empty environment).
      judging: {
        efficiencyThreshold: 0.85,
        efficiencyThresholds: '',
        efficiencyDrift: 0.04,
        sessionGapS: 600,
      },
      backfillMs: 0,
      seed: 42,
      prefix: 'SIM-',
      batchSize: 5000,
      quiet: false,
      key: null,
      ocpp: false,
      cpKeyFile: null,
    });
  });

  test.each([
    ['1.5h', 1.5 * 3_600_000],
    ['.5h', 1_800_000],
    ['90', 90_000],
    ['250ms', 250],
  ])('when --backfill is %s, then it is %d ms', (text, ms) => {
    expect(parseArgs(['--backfill', text], {}).backfillMs).toBe(ms);
  });

  test.each([
    [['--meters', 'many'], /--meters must be an integer from 1 to 100000/],
    [['--vehicles', '1e9'], /--vehicles must be an integer from 1 to 100000/],
    [['--faulty', '2'], /--faulty must be a number from 0 to 1/],
    [['--faulty', '-1'], /^--faulty must be a number from 0 to 1$/],
    [['--meters', '-5'], /^--meters must be an integer from 1 to 100000$/],
    [['--seed', '-3'], /^--seed must be a non-negative integer$/],
    [['--duration', '3x'], /--duration: not a duration/],
    [['--duration', '1e3s'], /--duration: not a duration/],
    [['--duration', '0'], /--duration must be at least 1ms: 0/],
    [['--backfill', '0h'], /--backfill must be at least 1ms: 0h/],
    [['--mode', 'weekly'], /--mode must be interval or cumulative/],
    [['--quiet=yes'], /'--quiet' does not take an argument/],
    [['--quiet', '-5'], /^Option '--quiet' takes no value, not -5\n/],
    [['--meter', '5'], /Unknown option '--meter'/],
    [['--ocpp', '--vehicles', '11'], /--meters must be at least --vehicles/],
    [['--meters', '2', '--vehicles', '4'], /--meters must be at least --vehicles/],
    // A backfill runs as fast as accepted: a live run's pace and length would be ignored.
    [
      ['--backfill', '1h', '--speed', '10'],
      /^--speed is for a live run: --backfill sends its span as fast as the engine accepts it/,
    ],
    [['--speed', '1', '--backfill', '1h'], /^--speed is for a live run/],
    [['--backfill', '1h', '--duration', '10m'], /^--duration is for a live run/],
    [['--url', 'notaurl'], /--url must be the engine's http:\/\/ or https:\/\/ address/],
    [['--url', 'ftp://host'], /--url must be the engine's http:\/\/ or https:\/\/ address/],
  ])('when the options are %j, then a UsageError names the option', (argv, message) => {
    expect(usageErrorOf(() => parseArgs(argv)).message).toMatch(message);
  });
});

test.each(['src/server.ts', 'workers/flusher.ts', 'src/mqtt-server.ts'])(
  'when %s is given an argument, then --help says what it runs and anything else is a usage error, before it starts',
  (entry) => {
    const run = (arg: string) =>
      spawnSync(process.execPath, ['--require', 'tsx/cjs', entry, arg], {
        encoding: 'utf8',
        env: {
          ...process.env,
          DATABASE_URL: 'postgres://127.0.0.1:1/none',
          REDIS_URL: 'redis://127.0.0.1:1',
        },
      });
    const help = run('--help');
    expect({ status: help.status, out: help.stdout }).toEqual({
      status: 0,
      out: expect.stringMatching(
        /^The engine's .*\nIt takes no arguments: its settings come from the environment/,
      ),
    });
    const wrong = run('--port=3000');
    expect({ status: wrong.status, err: wrong.stderr.split('\n')[0] }).toEqual({
      status: 2,
      err: "Unexpected argument '--port=3000'",
    });
  },
);

describe('the entry points without options', () => {
  const run = (script: string, ...args: string[]) =>
    spawnSync(process.execPath, ['--require', 'tsx/cjs', `scripts/${script}.ts`, ...args], {
      encoding: 'utf8',
      // Nowhere to connect: --help and a wrong argument must answer before any connection.
      env: {
        ...process.env,
        DATABASE_URL: 'postgres://127.0.0.1:1/none',
        REDIS_URL: 'redis://127.0.0.1:1',
      },
    });

  test.each(['migrate', 'start'])(
    'when %s is asked for --help, then it says what it does and touches nothing; a wrong argument is a usage error',
    (script) => {
      const help = run(script, '--help');
      expect({ status: help.status, first: help.stdout.split('\n')[0] }).toEqual({
        status: 0,
        first: `usage: npm ${script === 'start' ? 'start' : 'run migrate'}`,
      });
      const wrong = run(script, '--bogus');
      expect(wrong.status).toBe(2);
      expect(wrong.stderr).toMatch(/^Unknown option '--bogus'/);
    },
  );

  test('when mqtt-retire is given a client id no process could have used, then it says the rule', () => {
    const wrong = run('mqtt-retire', '--client-id', 'bad id');
    expect(wrong.status).toBe(2);
    expect(wrong.stderr).toMatch(
      /^--client-id must be up to 128 characters from A-Z a-z 0-9 _ \. : -, as MQTT_CLIENT_ID is/,
    );
  });
});

test('when a script starts, then it logs at LOG_LEVEL when that is a level, else at info until its configuration says more', () => {
  expect(startingLogLevel({ LOG_LEVEL: 'error' })).toBe('error');
  expect(startingLogLevel({ LOG_LEVEL: ' warn ' })).toBe('warn');
  expect(startingLogLevel({ LOG_LEVEL: 'loud' })).toBe('info');
  expect(startingLogLevel({})).toBe('info');
});
