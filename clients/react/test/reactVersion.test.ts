import { version as reactVersion } from 'react';
import { version as reactDomVersion } from 'react-dom';
import { expect, it } from 'vitest';

// The same tests run on React 19 (here) and 18 (clients/react18-tests): this one proves which.
it('runs on the React its vitest config names', () => {
  const major = process.env.EXPECTED_REACT_MAJOR;
  expect(major).toMatch(/^\d+$/);
  expect(reactVersion.split('.')[0]).toBe(major);
  expect(reactDomVersion.split('.')[0]).toBe(major);
});
