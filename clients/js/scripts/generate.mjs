// Writes src/frames.generated.ts from the server's frame schema (chat/frames.schema.json).
// `--check` writes nothing and fails when the committed file differs (test/generated.test.ts).
import { readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { compile } from 'json-schema-to-typescript';

export const schemaPath = fileURLToPath(
  new URL('../../../chat/frames.schema.json', import.meta.url),
);
export const outputPath = fileURLToPath(new URL('../src/frames.generated.ts', import.meta.url));

const banner = `/* eslint-disable */
// GENERATED from chat/frames.schema.json by \`npm run generate\` (clients/js): do not edit.
// A test fails when this file is stale; a new server frame type fails tsc until the
// client's dispatch (src/connection.ts) handles it.`;

export async function render() {
  const schema = JSON.parse(await readFile(schemaPath, 'utf8'));
  return compile(schema, 'ChatFrames', {
    bannerComment: banner,
    unreachableDefinitions: true,
    additionalProperties: false,
    strictIndexSignatures: true,
    format: true,
    style: { singleQuote: true, printWidth: 100 },
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const text = await render();
  if (process.argv.includes('--check')) {
    const current = await readFile(outputPath, 'utf8').catch(() => '');
    if (current !== text) {
      console.error('src/frames.generated.ts is stale: run `npm run generate` in clients/js');
      process.exit(1);
    }
  } else {
    await writeFile(outputPath, text);
  }
}
