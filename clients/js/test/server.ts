// A real daphne for the integration tests: the backend of this repository on a free port and
// a copy of the seeded SQLite database. CHAT_PYTHON picks the interpreter (its venv has daphne).
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const PYTHON = process.env.CHAT_PYTHON ?? join(REPO_DIR, '.venv-test/bin/python');
export const DEMO_PASSWORD = 'demo-pass-client';

export function serverEnv(dbPath: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!/^(DJANGO_|CHAT_|DATABASE_|REDIS_|JWT_)/.test(key)) env[key] = value;
  }
  return {
    ...env,
    DJANGO_SETTINGS_MODULE: 'crm_backend.settings',
    DJANGO_DEBUG: 'true',
    DATABASE_URL: `sqlite:///${dbPath}`,
    CHAT_MEDIA_ROOT: join(dirname(dbPath), 'media'),
    DEMO_PASSWORD,
    PYTHONUNBUFFERED: '1',
    ...extra,
  };
}

export function manage(env: NodeJS.ProcessEnv, ...args: string[]): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(PYTHON, ['manage.py', ...args], { cwd: REPO_DIR, env });
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk));
    child.stderr.on('data', (chunk) => (output += chunk));
    child.on('error', reject);
    child.on('exit', (code) =>
      code === 0
        ? resolvePromise(output)
        : reject(new Error(`manage.py ${args.join(' ')} failed (${code}):\n${output}`)),
    );
  });
}

function freePort(): Promise<number> {
  return new Promise((resolvePromise, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolvePromise(address.port) : reject(),
      );
    });
  });
}

export class DaphneServer {
  private process: ChildProcess | null = null;
  private log = '';

  private constructor(
    readonly port: number,
    private readonly env: NodeJS.ProcessEnv,
    private readonly dir: string,
  ) {}

  /** A server on a copy of the template database; `extra` adds settings (JWT_ACCESS_SECONDS…). */
  static async start(
    templateDb: string,
    extra: Record<string, string> = {},
  ): Promise<DaphneServer> {
    const dir = await mkdtemp(join(tmpdir(), 'crm-chat-daphne-'));
    const db = join(dir, 'db.sqlite3');
    await copyFile(templateDb, db);
    const server = new DaphneServer(await freePort(), serverEnv(db, extra), dir);
    await server.restart();
    return server;
  }

  get baseUrl(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Starts daphne (again, on the same port and database) and waits for /healthz. */
  async restart(timeoutMs = 20_000): Promise<void> {
    const child = spawn(
      PYTHON,
      [
        '-m',
        'daphne',
        '-e',
        `tcp:port=${this.port}:interface=127.0.0.1`,
        'crm_backend.asgi:application',
      ],
      { cwd: REPO_DIR, env: this.env, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.process = child;
    child.stdout!.on('data', (chunk) => (this.log += chunk));
    child.stderr!.on('data', (chunk) => (this.log += chunk));
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (child.exitCode !== null) throw new Error(`daphne exited early:\n${this.log}`);
      try {
        const response = await fetch(`${this.baseUrl}/healthz`);
        if (response.ok) return;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`daphne did not start in ${timeoutMs} ms:\n${this.log}`);
  }

  /** SIGKILL: nothing is closed, as when a machine dies. */
  async kill(): Promise<void> {
    const child = this.process;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
    this.process = null;
  }

  async stop(): Promise<void> {
    const child = this.process;
    if (child && child.exitCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5_000))]);
      if (child.exitCode === null) child.kill('SIGKILL');
    }
    this.process = null;
    await rm(this.dir, { recursive: true, force: true });
  }

  output(): string {
    return this.log;
  }
}
