import type { ChatError, ConnectionStatus, User } from '@crm-chat/client';

/**
 * Every refusal and error code in Portuguese: the very texts of the test page
 * (static/test_chat_websocket.html, CODE_TEXTS), checked equal by test/texts.test.ts.
 */
export const CODE_TEXTS: Record<string, string> = {
  authentication_required: 'é preciso entrar (login) para esta sala',
  token_expired: 'sua sessão expirou; entre de novo',
  token_invalid: 'credencial inválida; entre de novo',
  user_inactive: 'sua conta está desativada',
  origin_not_allowed: 'esta página não tem permissão de abrir o chat (origem não autorizada)',
  not_a_member: 'você não é membro desta sala; peça a um administrador da sala',
  removed_from_room: 'você foi removido desta sala',
  room_not_found: 'sala não encontrada',
  rate_limited: 'muitas mensagens seguidas; espere um pouco',
  frame_too_big: 'mensagem grande demais',
  service_unavailable: 'serviço indisponível no momento; reconectando',
  internal_error: 'erro inesperado no servidor',
  invalid_json: 'quadro inválido (não é JSON)',
  invalid_frame: 'quadro inválido',
  unknown_type: 'tipo de quadro desconhecido',
  empty_message: 'a mensagem está vazia',
  message_too_long: 'a mensagem é longa demais',
  not_persisted: 'a mensagem não foi guardada; envie de novo',
  message_not_found: 'mensagem não encontrada',
  not_allowed: 'você não pode fazer isso',
  edit_window_expired: 'o prazo para editar esta mensagem acabou',
  not_room_admin: 'só administradores da sala podem fazer isso',
  last_admin: 'a sala precisa de ao menos um administrador',
  invalid_emoji: 'reação inválida: use um emoji',
  too_many_reactions: 'esta mensagem já tem emojis diferentes demais',
  file_too_large: 'arquivo grande demais',
  file_type_not_allowed: 'este tipo de arquivo não pode ser enviado',
  attachment_not_found: 'arquivo não encontrado',
  room_read_only: 'esta sala está fechada para novas mensagens',
  record_not_found: 'registro do CRM não encontrado',
};

/** Codes only this app meets (login and the network), not the test page's vocabulary. */
const APP_TEXTS: Record<string, string> = {
  no_active_account: 'usuário ou senha incorretos',
  authentication_failed: 'usuário ou senha incorretos',
  network_error: 'falha de rede (servidor fora do ar ou CORS)',
  throttled: 'muitas tentativas; espere um pouco',
};

/** "<Portuguese text> (<code>)": the code stays, for whoever reports the problem. */
export function explain(code: string, detail?: string): string {
  return `${CODE_TEXTS[code] ?? APP_TEXTS[code] ?? (detail || 'erro')} (${code})`;
}

export function explainError(error: Pick<ChatError, 'code' | 'detail'> | Error): string {
  const coded = error as { code?: unknown; detail?: unknown; message?: string };
  if (typeof coded.code === 'string') return explain(coded.code, String(coded.detail ?? ''));
  return coded.message || 'erro';
}

export function secondsUntil(at: number | null, now: number): number | null {
  return at === null ? null : Math.max(0, Math.ceil((at - now) / 1000));
}

export function statusText(status: ConnectionStatus, retryIn: number | null): string {
  switch (status) {
    case 'connecting':
      return 'conectando…';
    case 'open':
      return 'conectado';
    case 'reconnecting':
      return retryIn === null ? 'reconectando…' : `reconectando em ${retryIn}s…`;
    case 'closed':
      return 'desconectado';
  }
}

export function typingText(typing: readonly User[]): string {
  const names = typing.map((user) => user.username);
  if (names.length === 0) return '';
  if (names.length === 1) return `${names[0]} está digitando…`;
  return `${names.slice(0, -1).join(', ')} e ${names[names.length - 1]} estão digitando…`;
}
