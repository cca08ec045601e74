import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { manage, serverEnv } from './server.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** A migrated, seeded SQLite database for integration tests to copy. */
    templateDb: string;
  }
}

export default async function setup(project: TestProject) {
  const dir = await mkdtemp(join(tmpdir(), 'crm-chat-client-'));
  const templateDb = join(dir, 'template.sqlite3');
  const env = serverEnv(templateDb);
  await manage(env, 'migrate', '--noinput', '-v0');
  await manage(env, 'seed_demo');
  project.provide('templateDb', templateDb);
  return async () => {
    await rm(dir, { recursive: true, force: true });
  };
}
