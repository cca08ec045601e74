import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));

// The hooks and their tests are @crm-chat/react's own; only React differs. Every import of
// react and react-dom (subpaths included) is sent to this package's React 18, and Testing
// Library is compiled through Vite so that its imports are sent there too.
export default defineConfig({
  root: here('../react'),
  resolve: {
    alias: {
      react: here('node_modules/react'),
      'react-dom': here('node_modules/react-dom'),
      '@testing-library/react': here(
        '../node_modules/@testing-library/react/dist/@testing-library/react.esm.js',
      ),
    },
  },
  test: {
    environment: 'jsdom',
    env: { EXPECTED_REACT_MAJOR: '18' },
    include: ['test/**/*.test.{ts,tsx}'],
    server: { deps: { inline: [/@testing-library\/react/] } },
  },
});
