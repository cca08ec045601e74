import { useState } from 'react';
import type { FormEvent } from 'react';
import { useSession } from '@crm-chat/react';
import { explainError } from './texts';

export function LoginForm() {
  const session = useSession();
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [busy, setBusy] = useState(false);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    try {
      await session.login(username.trim(), password);
    } catch {
      // the provider keeps the error: shown below
    } finally {
      setBusy(false);
    }
  };

  return (
    <form className="login" onSubmit={submit} data-testid="login-form">
      <h2>Entrar</h2>
      <label>
        Usuário
        <input
          data-testid="login-username"
          autoComplete="username"
          value={username}
          onChange={(event) => setUsername(event.target.value)}
          required
        />
      </label>
      <label>
        Senha
        <input
          data-testid="login-password"
          type="password"
          autoComplete="current-password"
          value={password}
          onChange={(event) => setPassword(event.target.value)}
          required
        />
      </label>
      <button type="submit" data-testid="login-submit" disabled={busy}>
        {busy ? 'Entrando…' : 'Entrar'}
      </button>
      {session.error && (
        <p className="error" role="alert" data-testid="login-error">
          {explainError(session.error)}
        </p>
      )}
    </form>
  );
}
