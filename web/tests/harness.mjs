// The real processes behind the dashboard tests: an orchestrator on the embedded
// store, and agents registered, enrolled and run exactly as scripts/demo does.

import { spawn, execFile } from 'node:child_process';
import { mkdtemp, writeFile, rm, chmod, mkdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** target/debug of this workspace: CARGO_TARGET_DIR when set, as cargo does. */
export function binaries() {
  const target = process.env.CARGO_TARGET_DIR ? resolve(REPO, process.env.CARGO_TARGET_DIR) : join(REPO, 'target');
  const dir = join(target, 'debug');
  for (const bin of ['pqescape-orchestrator', 'pqescape-agent']) {
    if (!existsSync(join(dir, bin))) {
      throw new Error(`${join(dir, bin)} is missing: run cargo build -p pqescape-orchestrator -p pqescape-agent`);
    }
  }
  return { orchestrator: join(dir, 'pqescape-orchestrator'), agent: join(dir, 'pqescape-agent') };
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Everything started by one test run, stopped together. */
export class Fleet {
  constructor(work, bins) {
    this.work = work;
    this.bins = bins;
    this.children = [];
  }

  static async create() {
    const work = await mkdtemp(join(tmpdir(), 'pqescape-dashboard-'));
    return new Fleet(work, binaries());
  }

  spawn(cmd, args, logName) {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.children.push(child);
    const log = [];
    child.stderr.on('data', (d) => log.push(d));
    child.log = () => Buffer.concat(log).toString();
    child.logName = logName;
    return child;
  }

  /** Starts the orchestrator on free ports; reads its admin token and addresses. */
  async startOrchestrator() {
    const child = this.spawn(this.bins.orchestrator, [
      '--data-dir', join(this.work, 'orchestrator'),
      '--listen', '127.0.0.1:0', '--grpc-listen', '127.0.0.1:0', '--agent-listen', '127.0.0.1:0',
    ], 'orchestrator');
    let out = '';
    await new Promise((ok, fail) => {
      const timer = setTimeout(() => fail(new Error(`orchestrator did not start:\n${out}\n${child.log()}`)), 20000);
      child.stdout.on('data', (d) => {
        out += d;
        // A TLS gateway (https) is ready once the orchestrator has said where its CA is.
        const gateway = out.match(/agent gateway at (\S+)\n/)?.[1];
        if (gateway && (!gateway.startsWith('https:') || /ca-file/.test(out))) { clearTimeout(timer); ok(); }
      });
      child.on('exit', (code) => fail(new Error(`orchestrator exited (${code}):\n${child.log()}`)));
    });
    this.token = out.match(/^bootstrap admin token \(shown once, store it now\): (\S+)$/m)[1];
    this.api = out.match(/API at (http:[^,]+),/)[1];
    this.base = this.api.replace(/\/api\/v1$/, '');
    const gateway = out.match(/agent gateway at (\S+)$/m)[1];
    this.gateway = /^https?:/.test(gateway) ? gateway : `http://${gateway}`;
    // Agents of a TLS gateway trust the CA the orchestrator generated in its data dir.
    this.caFile = this.gateway.startsWith('https:')
      ? out.match(/--ca-file[ =](\S+)/)?.[1] ?? join(this.work, 'orchestrator', 'gateway-tls', 'ca.pem')
      : null;
    return this;
  }

  /** Calls the admin API as `token` (the admin by default); throws on an error status. */
  async call(method, path, body, token = this.token) {
    const response = await fetch(`${this.api}${path}`, {
      method,
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const data = await response.json().catch(() => null);
    if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${JSON.stringify(data)}`);
    return data;
  }

  /**
   * Registers a consumer, enrolls a real agent with its one-time token and runs it,
   * as scripts/demo does. The one place that knows how an agent reaches the gateway.
   */
  async startAgent(name, labels) {
    const registered = await this.call('POST', '/consumers', { name, labels });
    const state = join(this.work, `agent-${name}`);
    const tokenFile = join(this.work, `token-${name}`);
    await writeFile(tokenFile, registered.enrollment.token, { mode: 0o600 });
    await chmod(tokenFile, 0o600);
    const reach = ['--orchestrator', this.gateway, ...(this.caFile ? ['--ca-file', this.caFile] : []),
      '--state-dir', state];
    await run(this.bins.agent, [...reach, 'enroll', '--token-file', tokenFile]);
    await rm(tokenFile);
    const agent = this.spawn(this.bins.agent, [...reach, 'run'], `agent ${name}`);
    return { consumer: registered.consumer, agent };
  }

  /** Stops an agent started by `startAgent`: its consumer stays enrolled, now offline. */
  async stopAgent(agent) {
    agent.kill('SIGTERM');
    if (agent.exitCode === null && agent.signalCode === null) await new Promise((r) => agent.once('exit', r));
  }

  /** Waits until every named consumer's agent has attached (its last-seen time is set). */
  async waitAttached(names, timeoutMs = 15000) {
    const until = Date.now() + timeoutMs;
    while (Date.now() < until) {
      const page = await this.call('GET', '/consumers?limit=500');
      const seen = page.items.filter((c) => names.includes(c.name) && c.last_seen);
      if (seen.length === names.length) return;
      await sleep(200);
    }
    throw new Error(`agents did not attach: ${names.join(', ')}`);
  }

  /** Creates, arms and (unless `fire` is false) fires a campaign; returns its id. */
  async campaign(plan, { fire = true } = {}) {
    const deadline = Math.floor(Date.now() / 1000) + 3600;
    const c = await this.call('POST', '/campaigns', { deadline, ...plan });
    await this.call('POST', `/campaigns/${c.id}/arm`);
    if (fire) await this.call('POST', `/campaigns/${c.id}/fire`, { confirm: c.id });
    return c.id;
  }

  async waitCampaign(id, state = 'completed', timeoutMs = 30000) {
    const until = Date.now() + timeoutMs;
    while (Date.now() < until) {
      const p = await this.call('GET', `/campaigns/${id}/progress`);
      if (p.state === state) return p;
      await sleep(250);
    }
    throw new Error(`campaign ${id} did not reach ${state}`);
  }

  async stop() {
    for (const child of this.children) child.kill('SIGTERM');
    await Promise.all(this.children.map((c) => (c.exitCode !== null || c.signalCode !== null)
      ? null : new Promise((r) => { c.once('exit', r); setTimeout(r, 3000); })));
    await rm(this.work, { recursive: true, force: true });
  }

  /** The stderr of every process, for a failing test's report. */
  logs() {
    return this.children.map((c) => `--- ${c.logName}\n${c.log().slice(-3000)}`).join('\n');
  }
}

export async function screenshotDir() {
  const dir = process.env.DASHBOARD_SCREENSHOTS ?? join(REPO, 'target', 'dashboard-screenshots');
  await mkdir(dir, { recursive: true });
  return dir;
}
