/**
 * The shared fake of Envoy for the supervisor's unit tests: processes
 * (`envoy`, `envoy --version`, `envoy --mode validate`) that exit when told or
 * signalled, the admin API (server_info, drain_listeners, stats), and the
 * files (EnvoyFiles) in memory. Nothing here waits on real time: helper runs
 * end on the next microtask unless held, and every spawn can be awaited.
 * Integration tests use the real Envoy instead.
 */
import { EventEmitter } from 'node:events';
import type { AdminRequest } from '../../agent/envoy/admin-client.js';
import type { EnvoyFiles } from '../../agent/envoy/envoy-files.js';
import type { SpawnFn } from '../../agent/envoy/process-launcher.js';
import { MeshError } from '../../lib/errors.js';

export type FakeKind = 'envoy' | 'version' | 'validate';

export class FakeEnvoyChild extends EventEmitter {
  readonly stdout = new EventEmitter();
  readonly stderr = new EventEmitter();
  readonly signals: Array<{ signal: string; at: number }> = [];
  exited = false;
  /** When true, SIGTERM is ignored (only SIGKILL ends it). */
  ignoreTerm = false;

  constructor(
    readonly pid: number | undefined,
    readonly kind: FakeKind,
    readonly args: string[],
    private readonly now: () => number,
  ) {
    super();
  }

  kill(signal: NodeJS.Signals): boolean {
    this.signals.push({ signal, at: this.now() });
    this.emit('signal', signal);
    if (this.exited) return false;
    if (signal === 'SIGKILL' || !this.ignoreTerm) this.exit(null, signal);
    return true;
  }

  /** Ends the process: output first, then 'close' (as Node does). */
  exit(code: number | null, signal: NodeJS.Signals | null, output?: string): void {
    if (this.exited) return;
    if (output !== undefined) this.stderr.emit('data', Buffer.from(output));
    this.exited = true;
    this.emit('close', code, signal);
  }

  /** The signals the process got, in order. */
  signalNames(): string[] {
    return this.signals.map((s) => s.signal);
  }

  /** The next signal the process gets. */
  nextSignal(): Promise<NodeJS.Signals> {
    return new Promise((resolve) => this.once('signal', resolve));
  }

  arg(name: string): string | undefined {
    const i = this.args.indexOf(name);
    return i < 0 ? undefined : this.args[i + 1];
  }

  get epoch(): number {
    return Number(this.arg('--restart-epoch'));
  }
}

export class FakeEnvoyFiles implements EnvoyFiles {
  readonly bootstraps = new Map<number, Readonly<Record<string, unknown>>>();
  readonly adminAddresses = new Map<number, string>();
  /** Binary path -> identity; a path not listed has identity '1:1:1'. */
  readonly identities = new Map<string, string>();
  readonly missing = new Set<string>();
  prepared = 0;
  sharedMemoryRemovals = 0;
  /** When set, writeBootstrap waits for it (holds a start before its spawn). */
  writeGate: Promise<void> | undefined;
  private writeWaiters: Array<(epoch: number) => void> = [];

  /** Resolves when the next writeBootstrap begins (before it waits for writeGate). */
  nextWrite(): Promise<number> {
    return new Promise((resolve) => this.writeWaiters.push(resolve));
  }

  async prepare(): Promise<void> {
    this.prepared++;
  }
  async writeBootstrap(epoch: number, bootstrap: Readonly<Record<string, unknown>>): Promise<string> {
    for (const resolve of this.writeWaiters.splice(0)) resolve(epoch);
    await this.writeGate;
    this.bootstraps.set(epoch, structuredClone(bootstrap));
    this.adminAddresses.delete(epoch);
    return `/fake/bootstrap-${epoch}.json`;
  }
  async readAdminAddress(epoch: number): Promise<string | undefined> {
    return this.adminAddresses.get(epoch);
  }
  async binaryIdentity(binary: string): Promise<string> {
    if (this.missing.has(binary)) throw new MeshError('MESH_E_CONFIG_INVALID', `the Envoy binary ${binary} cannot be read: ENOENT`);
    return this.identities.get(binary) ?? '1:1:1';
  }
  /** Counts the clean-ups after a final stop (shared memory and epoch files). */
  async cleanUp(): Promise<void> {
    this.sharedMemoryRemovals++;
  }
}

/** Spawns fake processes, answers the admin API, and keeps the files. */
export class FakeEnvoyHost {
  readonly files = new FakeEnvoyFiles();
  readonly children: FakeEnvoyChild[] = [];
  readonly adminCalls: string[] = [];
  /** `envoy --version` and `--mode validate` stay running until the test ends them. */
  holdVersion = false;
  holdValidation = false;
  validateOk = true;
  /** The release `envoy --version` reports. */
  version = '1.40.0';
  /** A new Envoy writes its admin address when spawned (else the test does, with writeAdminAddress). */
  writesAdminAddress = true;
  /** The next Envoy writes its admin address, then exits 1 (its admin never answers). */
  failNext = false;
  /** The next spawn fails (no such file): 'error' and 'close', no pid. */
  spawnErrorNext = false;
  /** Admin addresses whose /server_info fails. */
  readonly deadAdmins = new Set<string>();
  /** When set, /server_info waits for it. */
  serverInfoGate: Promise<void> | undefined;
  /** Active downstream connections /stats reports, one value per poll (the last repeats). */
  active: number[] = [0];
  private nextPid = 1000;
  private waiters: Array<{ kind: FakeKind; resolve: (child: FakeEnvoyChild) => void }> = [];

  constructor(private readonly now: () => number) {}

  readonly spawn: SpawnFn = (_binary, args) => {
    const kind: FakeKind = args[0] === '--version' ? 'version' : args[0] === '--mode' ? 'validate' : 'envoy';
    const failSpawn = this.spawnErrorNext;
    this.spawnErrorNext = false;
    const child = new FakeEnvoyChild(failSpawn ? undefined : this.nextPid++, kind, args, this.now);
    this.children.push(child);
    if (failSpawn) {
      queueMicrotask(() => {
        child.emit('error', new Error('spawn envoy ENOENT'));
        child.exit(-2, null);
      });
    } else if (kind === 'version' && !this.holdVersion) queueMicrotask(() => this.endVersion(child));
    else if (kind === 'validate' && !this.holdValidation) queueMicrotask(() => this.endValidation(child, this.validateOk));
    else if (kind === 'envoy') this.startEnvoy(child);
    for (const waiter of this.waiters.filter((w) => w.kind === kind)) waiter.resolve(child);
    this.waiters = this.waiters.filter((w) => w.kind !== kind);
    return child;
  };

  private startEnvoy(child: FakeEnvoyChild): void {
    if (this.writesAdminAddress || this.failNext) this.writeAdminAddress(child);
    if (!this.failNext) return;
    this.failNext = false;
    this.deadAdmins.add(FakeEnvoyHost.address(child.epoch));
    queueMicrotask(() => child.exit(1, null, 'critical: error initializing configuration\n'));
  }

  static address(epoch: number): string {
    return `127.0.0.1:${15000 + epoch}`;
  }

  writeAdminAddress(child: FakeEnvoyChild): void {
    this.files.adminAddresses.set(child.epoch, FakeEnvoyHost.address(child.epoch));
  }

  endVersion(child: FakeEnvoyChild): void {
    child.stdout.emit(
      'data',
      Buffer.from(`envoy  version: 9e5580933739775e8bce696a57a2e1bc99368f23/${this.version}/Clean/RELEASE/BoringSSL\n`),
    );
    child.exit(0, null);
  }

  endValidation(child: FakeEnvoyChild, ok: boolean): void {
    child.exit(ok ? 0 : 1, null, ok ? '' : "error initializing configuration 'x': Didn't find a registered implementation for 'nope'\n");
  }

  /** The next child of that kind to be spawned. */
  next(kind: FakeKind): Promise<FakeEnvoyChild> {
    return new Promise((resolve) => this.waiters.push({ kind, resolve }));
  }

  of(kind: FakeKind): FakeEnvoyChild[] {
    return this.children.filter((c) => c.kind === kind);
  }

  /** Every fake process still running, of any kind. */
  alive(): FakeEnvoyChild[] {
    return this.children.filter((c) => !c.exited);
  }

  readonly admin: AdminRequest = async (address, method, apiPath) => {
    this.adminCalls.push(`${method} ${address}${apiPath}`);
    if (apiPath === '/server_info') {
      if (this.deadAdmins.has(address)) throw new Error('connect ECONNREFUSED');
      await this.serverInfoGate;
      return { status: 200, body: '{"state":"PRE_INITIALIZING"}' };
    }
    if (apiPath === '/drain_listeners?graceful') return { status: 200, body: 'OK\n' };
    if (apiPath.startsWith('/stats')) {
      const active = this.active.length > 1 ? (this.active.shift() as number) : (this.active[0] as number);
      return { status: 200, body: `http.admin.downstream_cx_active: 1\nlistener.127.0.0.1_8080.downstream_cx_active: ${active}\n` };
    }
    return { status: 404, body: '' };
  };
}
