export interface Tokens {
  access: string;
  refresh: string;
}

/** Where the client keeps its tokens; save(null) forgets them (logout, session ended). */
export interface TokenStore {
  load(): Tokens | null;
  save(tokens: Tokens | null): void;
}

export function memoryTokenStore(initial: Tokens | null = null): TokenStore {
  let tokens = initial;
  return {
    load: () => tokens,
    save: (next) => {
      tokens = next;
    },
  };
}

/** Survives reloads of one tab, not the browser: a refresh token should not outlive the tab. */
export function sessionTokenStore(key = 'crm-chat.tokens'): TokenStore {
  const storage = (): Storage | null =>
    typeof window === 'undefined' ? null : window.sessionStorage;
  return {
    load() {
      const raw = storage()?.getItem(key);
      if (!raw) return null;
      try {
        const parsed = JSON.parse(raw) as Partial<Tokens>;
        return typeof parsed.access === 'string' && typeof parsed.refresh === 'string'
          ? { access: parsed.access, refresh: parsed.refresh }
          : null;
      } catch {
        return null;
      }
    },
    save(tokens) {
      if (tokens) storage()?.setItem(key, JSON.stringify(tokens));
      else storage()?.removeItem(key);
    },
  };
}
