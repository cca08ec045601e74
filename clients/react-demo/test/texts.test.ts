import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CODE_TEXTS, explain, secondsUntil, statusText, typingText } from '../src/texts';

/** The test page's CODE_TEXTS, read from the page itself. */
function testPageTexts(): Record<string, string> {
  const file = new URL('../../../static/test_chat_websocket.html', import.meta.url);
  const page = readFileSync(file, 'utf8');
  const block = /const CODE_TEXTS = \{([\s\S]*?)\n\s*\};/.exec(page)![1];
  const entries = [...block.matchAll(/^\s*(\w+): "([^"]*)",?$/gm)];
  return Object.fromEntries(entries.map((match) => [match[1], match[2]]));
}

describe('texts', () => {
  it('are the test page’s texts, every one of them', () => {
    const page = testPageTexts();
    expect(Object.keys(page).length).toBeGreaterThan(20);
    expect(CODE_TEXTS).toEqual(page);
  });

  it('explain a code in Portuguese and keep the code', () => {
    expect(explain('not_a_member')).toBe(
      'você não é membro desta sala; peça a um administrador da sala (not_a_member)',
    );
    expect(explain('brand_new', 'something new')).toBe('something new (brand_new)');
  });

  it('count the reconnect down in whole seconds', () => {
    expect(secondsUntil(10_500, 8_000)).toBe(3);
    expect(secondsUntil(7_000, 8_000)).toBe(0);
    expect(statusText('reconnecting', 3)).toBe('reconectando em 3s…');
    expect(statusText('reconnecting', null)).toBe('reconectando…');
  });

  it('name who is typing', () => {
    const user = (username: string, id: number) => ({ id, username });
    expect(typingText([])).toBe('');
    expect(typingText([user('maria', 1)])).toBe('maria está digitando…');
    expect(typingText([user('maria', 1), user('joao', 2), user('ana', 3)])).toBe(
      'maria, joao e ana estão digitando…',
    );
  });
});
