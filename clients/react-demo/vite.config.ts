/// <reference types="vitest/config" />
import { fileURLToPath } from 'node:url';
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

const source = (path: string) => fileURLToPath(new URL(path, import.meta.url));

export default defineConfig(({ command }) => ({
  plugins: [react()],
  // Django serves the build at /chat/ (crm_backend/frontend.py); `npm run dev` serves it at /.
  base: command === 'build' ? '/chat/' : '/',
  resolve: {
    // The workspace libraries from their sources: one build step, and edits to them show at
    // once under `npm run dev`.
    alias: {
      '@crm-chat/client': source('../js/src/index.ts'),
      '@crm-chat/react': source('../react/src/index.ts'),
    },
  },
  build: { outDir: 'dist', emptyOutDir: true },
  test: { environment: 'node', include: ['test/**/*.test.ts'] },
}));
