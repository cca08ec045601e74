import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    environment: 'jsdom',
    env: { EXPECTED_REACT_MAJOR: '19' },
    include: ['test/**/*.test.{ts,tsx}'],
  },
});
