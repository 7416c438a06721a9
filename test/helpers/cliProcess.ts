// Runs the built `dockside` program as a user would (`node bin/dockside.cjs ...`), each
// child in its own process group so that it, and the socat processes a simulator
// starts, can always be killed together, whatever state a failed test left them in.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const BIN = fileURLToPath(new URL('../../bin/dockside.cjs', import.meta.url));

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** stdout, line by line, empty lines dropped. */
  lines: string[];
  /** The run hit its safety limit and was killed (a hang: the test fails on it). */
  killed: boolean;
}

export interface SimCameraLine {
  serial: string;
  model: string;
  path: string;
  publicKey: string;
}

export interface SimHandle {
  child: ChildProcess;
  cameras: SimCameraLine[];
  /** Every stdout line so far (complete once stop() resolves). */
  lines: string[];
  stderr(): string;
  /** Signals the simulator process (not its group, as `kill PID` would) and waits for it. */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

interface Tracked {
  child: ChildProcess;
  persistent: boolean;
}

function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // the group is gone already
  }
}

function alive(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

/**
 * Every child a test file starts. `persistent` children (a simulator shared by a
 * describe block) survive killTransient(); killAll() ends everything.
 */
export class CliChildren {
  readonly #tracked = new Set<Tracked>();
  readonly #env: NodeJS.ProcessEnv;

  constructor(env: NodeJS.ProcessEnv = {}) {
    // Metrics off unless a test asks: test files run in parallel, and one port is one daemon.
    this.#env = { ...process.env, DOCKSIDE_LOG_LEVEL: 'warn', DOCKSIDE_METRICS: 'off', ...env };
  }

  spawn(args: string[], options: { cwd?: string; persistent?: boolean } = {}): ChildProcess {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: options.cwd, env: this.#env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const t: Tracked = { child, persistent: options.persistent ?? false };
    this.#tracked.add(t);
    child.once('exit', () => {
      // The leader is gone; anything left in its group (a socat it did not stop) goes too.
      // The group id cannot be reused while a member is alive, so this hits only ours.
      killGroup(child.pid);
      this.#tracked.delete(t);
    });
    return child;
  }

  /** Runs one command to completion; killed after `limitMs` (a safety net, not a timing assertion). */
  run(args: string[], options: { cwd?: string; limitMs?: number } = {}): Promise<CliResult> {
    const child = this.spawn(args, options);
    const out: string[] = [];
    let stderr = '';
    let killed = false;
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const lines = createInterface({ input: child.stdout!, crlfDelay: Infinity });
    lines.on('line', (l) => out.push(l));
    const limit = setTimeout(() => {
      killed = true;
      killGroup(child.pid);
    }, options.limitMs ?? 20_000);
    return new Promise((resolve, reject) => {
      child.once('error', (err) => {
        clearTimeout(limit);
        reject(err);
      });
      child.once('close', (code: number | null, signal: NodeJS.Signals | null) => {
        clearTimeout(limit);
        resolve({ code, signal, stdout: out.map((l) => `${l}\n`).join(''), stderr, lines: out.filter((l) => l.trim() !== ''), killed });
      });
    });
  }

  /** Starts `dockside sim` and waits for its `expect` camera lines. */
  async startSim(args: string[], expect: number, options: { cwd?: string; persistent?: boolean; limitMs?: number } = {}): Promise<SimHandle> {
    const child = this.spawn(['sim', ...args], options);
    const lines: string[] = [];
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const rl = createInterface({ input: child.stdout!, crlfDelay: Infinity });
    const closed = new Promise<void>((r) => rl.once('close', () => r()));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => {
      child.once('exit', (code, signal) => r({ code, signal }));
    });
    const cameras = await new Promise<SimCameraLine[]>((resolve, reject) => {
      const parsed: SimCameraLine[] = [];
      const limit = setTimeout(() => {
        killGroup(child.pid);
        reject(new Error(`dockside sim printed ${parsed.length} of ${expect} camera lines before the safety limit; stderr:\n${stderr}`));
      }, options.limitMs ?? 20_000);
      rl.on('line', (line) => {
        lines.push(line);
        if (parsed.length === expect) return;
        try {
          parsed.push(JSON.parse(line) as SimCameraLine);
        } catch {
          reject(new Error(`dockside sim printed a line that is not JSON: ${JSON.stringify(line)}`));
          return;
        }
        if (parsed.length === expect) {
          clearTimeout(limit);
          resolve(parsed);
        }
      });
      void exited.then(({ code, signal }) => {
        clearTimeout(limit);
        reject(new Error(`dockside sim exited (${String(code ?? signal)}) after ${parsed.length} of ${expect} camera lines; stderr:\n${stderr}`));
      });
    });
    return {
      child,
      cameras,
      lines,
      stderr: () => stderr,
      async stop(signal: NodeJS.Signals = 'SIGTERM') {
        if (alive(child)) child.kill(signal);
        const result = await exited;
        await closed;
        return result;
      },
    };
  }

  /**
   * Ends every child that is not persistent (for afterEach). Politely first: SIGTERM
   * lets a simulator stop and reap its socat processes (SIGKILL on the whole group
   * would leave them as zombies where init does not reap); then SIGKILL the group.
   */
  killTransient(): Promise<void> {
    return this.#end([...this.#tracked].filter((t) => !t.persistent));
  }

  /** Ends every child (for afterAll). */
  killAll(): Promise<void> {
    return this.#end([...this.#tracked]);
  }

  async #end(list: Tracked[], graceMs = 5000): Promise<void> {
    await Promise.all(
      list.map(async ({ child }) => {
        if (!alive(child)) return; // its exit handler already swept its group
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([exited, new Promise((r) => (timer = setTimeout(r, graceMs)))]);
        clearTimeout(timer);
        if (alive(child)) {
          killGroup(child.pid);
          await exited;
        }
      }),
    );
  }
}

/** Parses the one JSON document a `--json` command prints on stdout. */
export function onlyJson(r: CliResult): unknown {
  if (r.lines.length !== 1) throw new Error(`expected one JSON line on stdout, got ${r.lines.length}:\n${r.stdout}\nstderr:\n${r.stderr}`);
  return JSON.parse(r.lines[0]!) as unknown;
}
