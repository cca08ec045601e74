/** A REST failure in the server's one error shape ({code, detail, fields?}, docs/protocol.md). */
export class ChatApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly detail: string;
  readonly fields?: Record<string, string[]>;
  /** Seconds from Retry-After (429), else null. */
  readonly retryAfter: number | null;

  constructor(
    status: number,
    code: string,
    detail: string,
    fields?: Record<string, string[]>,
    retryAfter: number | null = null,
  ) {
    super(`${code}: ${detail}`);
    this.name = 'ChatApiError';
    this.status = status;
    this.code = code;
    this.detail = detail;
    if (fields) this.fields = fields;
    this.retryAfter = retryAfter;
  }
}

/** status 0: the server could not be reached (a retry may help). */
export function networkError(cause: unknown): ChatApiError {
  const detail = cause instanceof Error ? cause.message : String(cause);
  return new ChatApiError(0, 'network_error', detail);
}
