/**
 * A pseudo-terminal pair made by socat: the camera opens one end, the dock sees the
 * other as a serial port named after the camera's serial in a ports directory
 * (like /dev/serial/by-id). Killing socat is pulling the cable: both ends get an
 * I/O error and the link disappears from the ports directory.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, lstatSync, unlinkSync } from 'node:fs';
import { DockError } from '../errors.js';

export class PtyLink {
  readonly cameraPath: string;
  readonly dockPath: string;
  #proc: ChildProcess;

  private constructor(proc: ChildProcess, cameraPath: string, dockPath: string) {
    this.#proc = proc;
    this.cameraPath = cameraPath;
    this.dockPath = dockPath;
  }

  static async open(cameraPath: string, dockPath: string, timeoutMs = 5000): Promise<PtyLink> {
    for (const p of [cameraPath, dockPath]) removeLink(p);
    const proc = spawn('socat', [`pty,raw,echo=0,link=${cameraPath}`, `pty,raw,echo=0,link=${dockPath}`], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    proc.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const failed = new Promise<never>((_, reject) => {
      proc.once('error', (err) =>
        reject(new DockError('SIM_PTY', `cannot start socat for a simulated serial link: ${err.message}. Install it with \`apt-get install socat\``, { cameraPath, dockPath }, { cause: err })),
      );
      proc.once('exit', (code) => reject(new DockError('SIM_PTY', `socat exited (${String(code)}) before the pty pair was ready: ${stderr.trim()}`, { cameraPath, dockPath })));
    });
    failed.catch(() => undefined);
    const deadline = Date.now() + timeoutMs;
    while (!(existsSync(cameraPath) && existsSync(dockPath))) {
      if (Date.now() > deadline) {
        proc.kill('SIGKILL');
        throw new DockError('SIM_PTY', `socat did not create ${dockPath} within ${timeoutMs} ms`, { cameraPath, dockPath });
      }
      await Promise.race([new Promise((r) => setTimeout(r, 10)), failed]);
    }
    return new PtyLink(proc, cameraPath, dockPath);
  }

  get alive(): boolean {
    return this.#proc.exitCode === null && this.#proc.signalCode === null;
  }

  /** Ends the pair (the cable is pulled) and removes both links. */
  async close(): Promise<void> {
    if (this.alive) {
      const exited = new Promise((r) => this.#proc.once('exit', r));
      this.#proc.kill('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([exited, new Promise((r) => (timer = setTimeout(r, 2000)))]);
      clearTimeout(timer);
      if (this.alive) this.#proc.kill('SIGKILL');
    }
    removeLink(this.cameraPath);
    removeLink(this.dockPath);
  }
}

function removeLink(p: string): void {
  try {
    if (lstatSync(p).isSymbolicLink()) unlinkSync(p);
  } catch {
    // not there: nothing to remove
  }
}
