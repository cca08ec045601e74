import { afterEach, expect, test, vi } from 'vitest';
import { memoryTokenStore, sessionTokenStore } from '../../src/index.js';

afterEach(() => vi.unstubAllGlobals());

function fakeSessionStorage() {
  const items = new Map<string, string>();
  return {
    getItem: (key: string) => items.get(key) ?? null,
    setItem: (key: string, value: string) => void items.set(key, value),
    removeItem: (key: string) => void items.delete(key),
    items,
  };
}

test('sessionTokenStore keeps the tokens in window.sessionStorage under its key', () => {
  const storage = fakeSessionStorage();
  vi.stubGlobal('window', { sessionStorage: storage });
  const store = sessionTokenStore('k');
  expect(store.load()).toBeNull();
  store.save({ access: 'a', refresh: 'r' });
  expect(JSON.parse(storage.items.get('k')!)).toEqual({ access: 'a', refresh: 'r' });
  expect(sessionTokenStore('k').load()).toEqual({ access: 'a', refresh: 'r' });
  store.save(null);
  expect(storage.items.has('k')).toBe(false);
});

test('sessionTokenStore reads garbage as no tokens, and works without a window', () => {
  const storage = fakeSessionStorage();
  storage.setItem('k', '{not json');
  vi.stubGlobal('window', { sessionStorage: storage });
  expect(sessionTokenStore('k').load()).toBeNull();
  vi.unstubAllGlobals();
  expect(sessionTokenStore('k').load()).toBeNull();
});

test('memoryTokenStore', () => {
  const store = memoryTokenStore();
  store.save({ access: 'a', refresh: 'r' });
  expect(store.load()).toEqual({ access: 'a', refresh: 'r' });
});
