/**
 * A Mosquitto broker of the caller's own (tests, fault scenarios, the benchmark), on a free port and
 * a directory of its own, with the settings ops/mosquitto/mosquitto.conf gives operators: nothing
 * dropped for a slow or absent consumer (max_queued_messages 0), persistence on.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort } from './bench-helpers';

export interface MosquittoOptions {
  /** Seconds between snapshots (ops/mosquitto/mosquitto.conf has 10); each rewrites the whole queue. */
  autosaveS?: number;
  /** Every packet in the log (e.g. to see the PUBACK reason codes the broker received). */
  logAll?: boolean;
  /** User names and passwords: anonymous clients are refused when given. */
  users?: Record<string, string>;
  /** Messages queued per client beyond which the broker drops (default 0: none dropped). */
  maxQueuedMessages?: number;
  /** Seconds between the broker's `$SYS` updates (Mosquitto's default 10). */
  sysIntervalS?: number;
  /** Extra mosquitto.conf lines. */
  extra?: string[];
}

export class Mosquitto {
  private child: ChildProcess | null = null;
  readonly dir = mkdtempSync(path.join(os.tmpdir(), 'mosquitto-'));

  private constructor(
    readonly port: number,
    private readonly options: MosquittoOptions,
  ) {}

  static async start(options: MosquittoOptions = {}): Promise<Mosquitto> {
    const broker = new Mosquitto(await freePort(), options);
    await broker.start();
    return broker;
  }

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  get logFile(): string {
    return path.join(this.dir, 'mosquitto.log');
  }

  log(): string {
    return existsSync(this.logFile) ? readFileSync(this.logFile, 'utf8') : '';
  }

  async start(): Promise<void> {
    const conf = path.join(this.dir, 'mosquitto.conf');
    const passwords = path.join(this.dir, 'passwords');
    const users = Object.entries(this.options.users ?? {});
    writeFileSync(passwords, '');
    for (const [user, password] of users) {
      execFileSync('mosquitto_passwd', ['-b', passwords, user, password]);
    }
    writeFileSync(
      conf,
      [
        `listener ${this.port} 127.0.0.1`,
        ...(users.length > 0
          ? ['allow_anonymous false', `password_file ${passwords}`]
          : ['allow_anonymous true']),
        'persistence true',
        `persistence_location ${this.dir}/`,
        `autosave_interval ${this.options.autosaveS ?? 10}`,
        `max_queued_messages ${this.options.maxQueuedMessages ?? 0}`,
        ...(this.options.sysIntervalS ? [`sys_interval ${this.options.sysIntervalS}`] : []),
        'max_queued_bytes 0',
        `log_dest file ${this.logFile}`,
        ...(this.options.logAll ? ['log_type all'] : []),
        // As root, Mosquitto would switch to its own user, which cannot write this directory.
        ...(process.getuid?.() === 0 ? ['user root'] : []),
        ...(this.options.extra ?? []),
        '',
      ].join('\n'),
    );
    const child = spawn('mosquitto', ['-c', conf], { stdio: 'ignore' });
    this.child = child;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      if (child.exitCode !== null) break;
      if (await canConnect(this.port)) return;
      await Promise.race([exited, new Promise((r) => setTimeout(r, 50))]);
    }
    throw new Error(
      `mosquitto did not start on port ${this.port} (Debian: apt-get install mosquitto): ${this.log().slice(-500)}`,
    );
  }

  /** SIGKILL loses what was published since the last autosave; SIGTERM saves first. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill(signal);
    });
  }

  async destroy(): Promise<void> {
    await this.kill('SIGTERM');
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
