// One s3rver process with the fault proxy in front of it, for a test file that runs a
// daemon against an S3 sink: started before the file's tests, reset after each (its
// daemons closed, its data dirs removed, the proxy passing again), stopped after all.
import { rmSync } from 'node:fs';
import { afterAll, afterEach, beforeAll } from 'vitest';
import type { Daemon } from '../../src/ingest/Daemon.js';
import { startFaultProxy, type FaultProxy } from './s3FaultProxy.js';
import { startS3Server, stopAll, type S3Server } from './s3Server.js';

/** s3rver's fixed credentials. */
export const S3RVER_CREDS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };

export interface S3Rig {
  /** The store itself (check what is really there through this). */
  readonly server: S3Server;
  /** The fault proxy in front of it (point the sink here). */
  readonly proxy: FaultProxy;
  /** Closed after each test. */
  readonly daemons: Daemon[];
  /** Removed after each test. */
  readonly dirs: string[];
  /** A key prefix no other test of the file uses: `${name}1`, `${name}2`, ... */
  prefix(name: string): string;
}

/** Call at the top of a test file. */
export function useS3Rig(buckets: string[]): S3Rig {
  let server: S3Server | undefined;
  let proxy: FaultProxy | undefined;
  let n = 0;
  const daemons: Daemon[] = [];
  const dirs: string[] = [];
  beforeAll(async () => {
    server = await startS3Server({ buckets });
    proxy = await startFaultProxy(server.endpoint);
  });
  afterEach(async () => {
    for (const d of daemons.splice(0)) await d.close();
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
    if (proxy) {
      proxy.mode = 'pass';
      proxy.resetStats();
    }
  });
  afterAll(async () => {
    await proxy?.close();
    await stopAll();
  });
  return {
    get server() {
      if (!server) throw new Error('the S3 rig is used before its beforeAll ran');
      return server;
    },
    get proxy() {
      if (!proxy) throw new Error('the S3 rig is used before its beforeAll ran');
      return proxy;
    },
    daemons,
    dirs,
    prefix: (name) => `${name}${++n}`,
  };
}
