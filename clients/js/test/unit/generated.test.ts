import { readFile } from 'node:fs/promises';
import { expect, test } from 'vitest';
// @ts-expect-error: a plain .mjs script without types
import { outputPath, render } from '../../scripts/generate.mjs';

test('src/frames.generated.ts is what chat/frames.schema.json generates (npm run generate)', async () => {
  const committed = await readFile(outputPath as string, 'utf8');
  expect(committed, 'stale: run `npm run generate` in clients/js').toBe(
    await (render as () => Promise<string>)(),
  );
});
