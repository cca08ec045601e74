import type { ChatClient } from './client.js';
import { ChatApiError } from './errors.js';
import type {
  ChatMessage,
  ClientFrame,
  ConnectionEstablishedFrame,
  ErrorFrame,
  HistoryFrame,
  PublicChatMessage,
  ChangesFrame,
  MessageDeletedFrame,
  MessageReactionsFrame,
  MessageUpdatedFrame,
  Notification,
  PresenceFrame,
  ServerFrame,
  TypingFrame,
  User,
} from './frames.generated.js';
import { backoffDelay, closeDecision, type CloseDecision } from './policy.js';
import {
  applyDeleted,
  applyReactions,
  applyUpdated,
  mergeMessages,
  replaceLoaded,
} from './timeline.js';
import type { HistoryPage, RoomInfo, WebSocketLike } from './types.js';

export type ConnectionStatus = 'connecting' | 'open' | 'reconnecting' | 'closed';

/** A refusal: of the socket (closeCode set), of one sent frame (clientId set) or of a request. */
export interface ChatError {
  code: string;
  detail: string;
  closeCode: number | null;
  /** The connection stopped for good: reconnecting would be refused again. */
  final: boolean;
  clientId?: string;
}

export interface PendingMessage {
  clientId: string;
  text: string;
  replyTo?: number;
  attachments?: number[];
  /** queued: waits for a socket; sent: written, its chat.message not back yet; failed: refused. */
  state: 'queued' | 'sent' | 'failed';
  error?: ChatError;
}

export interface ConnectionSnapshot {
  status: ConnectionStatus;
  room: RoomInfo | null;
  me: User | null;
  /** Stored messages, id ascending, each once. */
  messages: readonly ChatMessage[];
  pending: readonly PendingMessage[];
  online: readonly User[];
  typing: readonly User[];
  /** Each member's read marker (user id → message id) as announced by `read` frames. */
  readMarkers: Readonly<Record<number, number>>;
  error: ChatError | null;
  hasOlder: boolean;
  /** Reconnect attempts since the last open socket (backoff goes on from the attempts before
   * it when that socket drops before its recovery completed). */
  attempt: number;
  /** When the next attempt starts (ms since the epoch), while one is waiting. */
  nextRetryAt: number | null;
}

/** A connection's snapshot before it has connected (shared and frozen: a change makes a new
 * snapshot, never edits one). A React tree can render it before any connection exists. */
export const INITIAL_SNAPSHOT: ConnectionSnapshot = Object.freeze({
  status: 'connecting',
  room: null,
  me: null,
  messages: Object.freeze([]),
  pending: Object.freeze([]),
  online: Object.freeze([]),
  typing: Object.freeze([]),
  readMarkers: Object.freeze({}),
  error: null,
  hasOlder: false,
  attempt: 0,
  nextRetryAt: null,
});

export interface ConnectionOptions {
  /** 'ticket' (default): a fresh single-use ticket per attempt; 'token': ?token=<access>. */
  auth?: 'ticket' | 'token';
  /** Messages of the first page (REST history). */
  initialLimit?: number;
  /** Delay before reconnect attempt n (default: backoffDelay). */
  reconnectDelay?: (attempt: number) => number;
  /** Ping period; a socket that answers two pings in a row with nothing is taken as dead.
   * 0: no pings. */
  pingIntervalMs?: number;
  /** A typing user without news for this long is no longer shown typing. */
  typingTimeoutMs?: number;
}

/** A REST history page merged: the first page (`first`) or a `loadOlder()` page (`older`). */
export interface HistoryEvent {
  kind: 'first' | 'older';
  /** Its messages not seen before, id ascending (maybe none). */
  messages: readonly ChatMessage[];
}

export interface ConnectionEvents {
  frame: ServerFrame;
  status: ConnectionStatus;
  error: ChatError;
  /** A message not seen before that is new to the user: a live one, or one stored while
   * disconnected and recovered after a reconnect. Never one of a history page: a sound or a
   * toast plays for news, not for the first page or `loadOlder()`. */
  message: ChatMessage;
  /** A history page's messages, which `message` leaves out. */
  history: HistoryEvent;
  /** This socket's `notification` frame. Every open connection of a user gets each one:
   * prefer ChatClient's `notification` event, which tells each once. */
  notification: Notification;
}

type Listener<T> = (value: T) => void;
type ChangeFrame = MessageUpdatedFrame | MessageDeletedFrame | MessageReactionsFrame;
type SyncType = 'chat.sync' | 'chat.sync_changes';

/** Resends of a message the server could not take now (rate_limited, not_persisted). */
const MAX_TRANSIENT_RESENDS = 3;
const TRANSIENT_CODES = new Set(['rate_limited', 'not_persisted']);
const TYPING_REPEAT_MS = 2_000;
const READ_INTERVAL_MS = 1_000;
/** Frames of the message budget (messages, edits, deletes, reactions) the outbox sends at once
 * after a reconnect, then each second: the server allows 10/s after a burst of 30, and 20
 * rate_limited in a row close the socket for good (4429). */
const OUTBOX_BURST = 20;
const OUTBOX_PER_SECOND = 8;
const OPEN = 1;

/** One room's live view: a socket that reconnects, recovers what it missed and keeps an
 * outbox. Read it with getSnapshot/subscribe (React's useSyncExternalStore). */
export class ChatConnection {
  readonly roomId: string;
  private readonly client: ChatClient;
  private readonly options: Required<ConnectionOptions>;
  private readonly onClosed: () => void;
  private snapshot: ConnectionSnapshot = INITIAL_SNAPSHOT;
  private readonly listeners = new Set<() => void>();
  private readonly eventListeners = new Map<keyof ConnectionEvents, Set<Listener<never>>>();

  private socket: WebSocketLike | null = null;
  /** Bumped for every socket: answers for an older one are ignored. */
  private generation = 0;
  private established = false;
  private closedByUser = false;
  private refreshedSinceOpen = false;
  /** This attempt's handshake already got a second ticket after a token_invalid. */
  private ticketRetried = false;
  /** Attempts before the open socket, kept until it has recovered: a server that accepts and
   * drops at once (a crash on recovery) must not be retried every second forever. */
  private attemptsBeforeStable = 0;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private pingTimer: ReturnType<typeof setInterval> | null = null;
  private heardSincePing = false;
  private readonly typingTimers = new Map<number, ReturnType<typeof setTimeout>>();
  /** Resends and sync retries of this socket: a closed connection must leave no timer. */
  private readonly socketTimers = new Set<ReturnType<typeof setTimeout>>();

  // Recovery (docs/protocol.md, "Reconnecting without gaps or duplicates"): every message up
  // to `syncedThrough` and every change up to `changeCursor` is known. Live frames received
  // while a recovery runs only move them when it completes.
  private initialized = false;
  private syncedThrough = 0;
  private changeCursor = 0;
  private recoveringMessages = false;
  private recoveringChanges = false;
  private liveMaxId = 0;
  private liveMaxChange = 0;
  private presenceLog: PresenceFrame[] | null = null;
  private restLoads = 0;
  private changesDuringRest: ChangeFrame[] = [];

  private readonly queuedActions: ClientFrame[] = [];
  private readonly resends = new Map<string, number>();
  /** The last sync request of each kind, to ask again when it was rate limited. */
  private readonly lastSync = new Map<SyncType, { clientId: string; after: number }>();
  private pendingRead: number | null = null;
  private lastReadSent = 0;
  private lastReadAt = 0;
  private readTimer: ReturnType<typeof setTimeout> | null = null;
  /** Set while a long outbox drains: new frames wait behind it, in order. */
  private outboxTimer: ReturnType<typeof setTimeout> | null = null;
  private typingSent = false;
  private lastTypingSentAt = 0;
  private idCounter = 0;
  private readonly idPrefix = randomId();

  constructor(
    client: ChatClient,
    roomId: string,
    options: ConnectionOptions = {},
    onClosed: () => void = () => {},
  ) {
    this.client = client;
    this.roomId = roomId;
    this.onClosed = onClosed;
    this.options = {
      auth: options.auth ?? 'ticket',
      initialLimit: options.initialLimit ?? 50,
      reconnectDelay: options.reconnectDelay ?? ((attempt) => backoffDelay(attempt)),
      pingIntervalMs: options.pingIntervalMs ?? 25_000,
      typingTimeoutMs: options.typingTimeoutMs ?? 6_000,
    };
    void this.openSocket();
  }

  getSnapshot = (): ConnectionSnapshot => this.snapshot;

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  on<K extends keyof ConnectionEvents>(event: K, fn: Listener<ConnectionEvents[K]>): () => void {
    let set = this.eventListeners.get(event);
    if (!set) this.eventListeners.set(event, (set = new Set()));
    set.add(fn as Listener<never>);
    return () => set.delete(fn as Listener<never>);
  }

  /** Queues a message; returns its client_id. It stays in `pending` until its own chat.message
   * comes back, and is sent again with the same client_id after a reconnect (stored once). */
  send(text: string, opts: { replyTo?: number; attachments?: number[] } = {}): string {
    const message: PendingMessage = { clientId: this.newClientId(), text, state: 'queued' };
    if (opts.replyTo !== undefined) message.replyTo = opts.replyTo;
    if (opts.attachments?.length) message.attachments = [...opts.attachments];
    this.setState({ pending: [...this.snapshot.pending, message] });
    if (!this.outboxTimer) this.transmit(message);
    return message.clientId;
  }

  /** Sends a failed message again (same client_id). */
  retry(clientId: string): void {
    const message = this.snapshot.pending.find((p) => p.clientId === clientId);
    if (!message || message.state !== 'failed') return;
    this.resends.delete(clientId);
    const { error: _refusal, ...again } = message; // no longer refused: it is being sent again
    const queued: PendingMessage = { ...again, state: 'queued' };
    this.setState({
      pending: this.snapshot.pending.map((p) => (p.clientId === clientId ? queued : p)),
    });
    if (!this.outboxTimer) this.transmit(queued);
  }

  /** Forgets a pending message (it may still have been stored if it was sent). */
  discard(clientId: string): void {
    this.resends.delete(clientId);
    this.setState({ pending: this.snapshot.pending.filter((p) => p.clientId !== clientId) });
  }

  setTyping(isTyping: boolean): void {
    if (!this.isOpen()) return;
    const now = Date.now();
    if (isTyping && this.typingSent && now - this.lastTypingSentAt < TYPING_REPEAT_MS) return;
    if (!isTyping && !this.typingSent) return;
    this.sendFrame({ type: 'typing', is_typing: isTyping });
    this.typingSent = isTyping;
    this.lastTypingSentAt = now;
  }

  /** Moves the read marker forward (never back); sent when the socket is open. */
  markRead(messageId: number): void {
    if (messageId <= this.lastReadSent || messageId <= (this.pendingRead ?? 0)) return;
    this.pendingRead = messageId;
    this.flushRead();
  }

  react(messageId: number, emoji: string): void {
    this.act({ type: 'reaction.add', message_id: messageId, emoji });
  }

  unreact(messageId: number, emoji: string): void {
    this.act({ type: 'reaction.remove', message_id: messageId, emoji });
  }

  edit(messageId: number, text: string): void {
    this.act({ type: 'chat.edit', message_id: messageId, message: text });
  }

  remove(messageId: number): void {
    this.act({ type: 'chat.delete', message_id: messageId });
  }

  /** Loads the page before the oldest loaded message (REST); resolves to whether older remain. */
  async loadOlder(limit = 50): Promise<boolean> {
    const oldest = this.snapshot.messages[0]?.id;
    if (oldest === undefined) return false;
    const page = await this.historyPage({ before: oldest, limit }, 'older');
    this.setState({ hasOlder: page.hasMore });
    return page.hasMore;
  }

  /** Reconnects now instead of waiting for the backoff (also after a final refusal). */
  retryNow(): void {
    if (this.closedByUser || this.snapshot.status === 'open' || this.socket) return;
    this.clearRetryTimer();
    this.ticketRetried = false;
    this.setState({ status: 'reconnecting', nextRetryAt: null, error: null });
    void this.openSocket();
  }

  close(): void {
    if (this.closedByUser) return;
    this.closedByUser = true;
    this.detachSocket(1000);
    this.clearRetryTimer();
    this.setState({ status: 'closed', nextRetryAt: null });
    this.onClosed();
  }

  // --- sockets -------------------------------------------------------------------------------

  private async openSocket(): Promise<void> {
    const generation = ++this.generation;
    let url: string;
    try {
      url = await this.client.socketUrl(this.roomId, this.options.auth);
    } catch (error) {
      if (generation === this.generation && !this.closedByUser) this.attemptFailed(error);
      return;
    }
    if (generation !== this.generation || this.closedByUser) return;
    let socket: WebSocketLike;
    try {
      socket = this.client.newSocket(url);
    } catch (error) {
      this.stop(asChatError(error, true));
      return;
    }
    this.socket = socket;
    socket.onmessage = (event) => {
      if (this.socket === socket) this.receive(event.data);
    };
    socket.onclose = (event) => {
      if (this.socket === socket) this.socketClosed(event.code);
    };
    socket.onerror = () => {}; // a close event follows, with the code to decide on
  }

  /** Getting a ticket failed: transient (network, 5xx, 429) → retry; else a refusal → stop. */
  private attemptFailed(error: unknown): void {
    if (!isTransient(error)) return this.stop(asChatError(error, true));
    const retryAfterMs = (error.retryAfter ?? 0) * 1000;
    this.scheduleRetry(retryAfterMs);
  }

  private socketClosed(code: number): void {
    this.detachSocket();
    const decision = closeDecision(code);
    this.decide(decision, {
      code: decision === 'stop' ? 'connection_refused' : 'connection_lost',
      detail: `the connection closed (${code})`,
      closeCode: code,
      final: decision === 'stop',
    });
  }

  private decide(decision: CloseDecision, error: ChatError): void {
    if (this.closedByUser) return;
    if (decision === 'stop') return this.stop(error);
    if (decision === 'refresh' && !this.refreshedSinceOpen) {
      // A token that expires again at once (a skewed clock) falls back to the backoff.
      this.refreshedSinceOpen = true;
      this.setState({ status: 'reconnecting' });
      const generation = this.generation;
      this.client.refreshAccessToken().then(
        () => {
          if (generation === this.generation && !this.closedByUser) void this.openSocket();
        },
        (refusal: unknown) => {
          if (generation !== this.generation) return;
          if (!isTransient(refusal)) return this.stop(asChatError(refusal, true));
          // Not refreshed: the next token_expired must refresh again, or every attempt would
          // reuse the expired token until the user reloads.
          this.refreshedSinceOpen = false;
          this.scheduleRetry();
        },
      );
      return;
    }
    this.scheduleRetry();
  }

  private scheduleRetry(minDelayMs = 0): void {
    const attempt = Math.max(this.snapshot.attempt, this.attemptsBeforeStable) + 1;
    const delay = Math.max(this.options.reconnectDelay(attempt), minDelayMs);
    this.clearRetryTimer();
    this.setState({ status: 'reconnecting', attempt, nextRetryAt: Date.now() + delay });
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.ticketRetried = false; // a new attempt
      this.setState({ nextRetryAt: null });
      void this.openSocket();
    }, delay);
  }

  private stop(error: ChatError): void {
    this.detachSocket();
    this.clearRetryTimer();
    this.setState({ status: 'closed', error, nextRetryAt: null });
    this.emit('error', error);
  }

  /** Forgets the current socket (its late events are ignored) and closes it. */
  private detachSocket(code?: number): void {
    const socket = this.socket;
    this.generation++;
    this.socket = null;
    this.established = false;
    this.recoveringMessages = false;
    this.recoveringChanges = false;
    this.presenceLog = null;
    this.stopPing();
    this.clearTyping();
    this.typingSent = false;
    if (this.readTimer) clearTimeout(this.readTimer); // the next open flushes the marker
    this.readTimer = null;
    if (this.outboxTimer) clearTimeout(this.outboxTimer); // and what the outbox still holds
    this.outboxTimer = null;
    // The next open asks for its own sync pages and flushes queued messages again.
    for (const timer of this.socketTimers) clearTimeout(timer);
    this.socketTimers.clear();
    if (this.snapshot.pending.some((p) => p.state === 'sent')) {
      this.setState({
        pending: this.snapshot.pending.map((p) =>
          p.state === 'sent' ? { ...p, state: 'queued' } : p,
        ),
      });
    }
    if (socket) {
      socket.onmessage = socket.onclose = null;
      // Not null: `ws` emits 'error' when closed while connecting, and an 'error' without a
      // listener throws an uncaught exception in Node (browsers only fire an event).
      socket.onerror = () => {};
      try {
        socket.close(code ?? 1000);
      } catch {
        // already closing
      }
    }
  }

  private clearRetryTimer(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }

  private isOpen(): boolean {
    return this.established && this.socket !== null && this.socket.readyState === OPEN;
  }

  private sendFrame(frame: ClientFrame): boolean {
    if (!this.isOpen()) return false;
    this.socket!.send(JSON.stringify(frame));
    return true;
  }

  // --- frames --------------------------------------------------------------------------------

  private receive(data: unknown): void {
    this.heardSincePing = true;
    let frame: ServerFrame;
    try {
      frame = JSON.parse(String(data)) as ServerFrame;
    } catch {
      return; // the server sends JSON only
    }
    this.emit('frame', frame);
    this.dispatch(frame);
  }

  /** Every server frame type, exhaustively: a type added to the schema fails tsc here. */
  private dispatch(frame: ServerFrame): void {
    switch (frame.type) {
      case 'connection.established':
        return this.onEstablished(frame);
      case 'chat.message':
        if (frame.id === null) return this.onPublicMessage(frame);
        return this.onLiveMessage(frame);
      case 'chat.history':
        return this.onHistoryPage(frame);
      case 'chat.changes':
        return this.onChangesPage(frame);
      case 'chat.message.updated':
      case 'chat.message.deleted':
      case 'chat.message.reactions':
        this.applyChange(frame);
        // A REST page on its way may hold an older copy of this message, read before this
        // change committed: apply the change again once the page is merged.
        if (this.restLoads > 0) this.changesDuringRest.push(frame);
        return this.liveChange(frame.change_seq);
      case 'error':
        return this.onError(frame);
      case 'pong':
        return;
      case 'presence':
        this.presenceLog?.push(frame);
        return this.applyPresence(frame);
      case 'typing':
        return this.onTyping(frame);
      case 'read': {
        const current = this.snapshot.readMarkers[frame.user.id] ?? 0;
        if (frame.message_id <= current) return;
        this.setState({
          readMarkers: { ...this.snapshot.readMarkers, [frame.user.id]: frame.message_id },
        });
        return;
      }
      case 'member.added':
        return; // told through the 'frame' event; membership lists are REST's
      case 'member.removed':
        this.forgetUser(frame.user.id);
        return;
      case 'room.updated': {
        const room = this.snapshot.room;
        if (room) this.setState({ room: { ...room, ...frame.room } });
        return;
      }
      case 'notification':
        this.emit('notification', frame.notification);
        return this.client.notificationReceived(frame.notification);
      default:
        return assertNever(frame);
    }
  }

  private onEstablished(frame: ConnectionEstablishedFrame): void {
    this.established = true;
    this.refreshedSinceOpen = false;
    this.ticketRetried = false;
    this.attemptsBeforeStable = Math.max(this.attemptsBeforeStable, this.snapshot.attempt);
    this.setState({
      status: 'open',
      attempt: 0,
      nextRetryAt: null,
      error: null,
      room: { ...this.snapshot.room, ...frame.room },
      me: frame.user.id === null ? null : frame.user,
    });
    this.startPing();
    if (frame.room.type === 'public') {
      // The public test room stores nothing and has no REST: no history, sync or presence.
      this.attemptsBeforeStable = 0;
      return this.flushOutbox();
    }
    const generation = this.generation;
    this.recover(generation, frame.room.change_seq ?? 0);
    this.flushOutbox();
    void this.loadPresence(generation);
  }

  private recover(generation: number, roomChangeSeq: number): void {
    this.recoveringMessages = true;
    this.liveMaxId = this.syncedThrough;
    if (!this.initialized) {
      // A fresh client starts from the room's change_seq at this handshake: recovery from it
      // may repeat a change, never miss one.
      this.changeCursor = Math.max(this.changeCursor, roomChangeSeq);
      void this.loadFirstPage(generation);
      return;
    }
    this.recoveringChanges = true;
    this.liveMaxChange = this.changeCursor;
    this.requestSync('chat.sync', this.syncedThrough);
    this.requestSync('chat.sync_changes', this.changeCursor);
  }

  private async loadFirstPage(generation: number): Promise<void> {
    let page;
    try {
      page = await this.historyPage({ limit: this.options.initialLimit }, 'first');
    } catch (error) {
      if (generation !== this.generation) return;
      this.reportError(asChatError(error, false));
      this.detachSocket();
      return this.scheduleRetry();
    }
    // The newest page is contiguous up to its last id; older ones come from loadOlder.
    this.syncedThrough = Math.max(this.syncedThrough, page.messages.at(-1)?.id ?? 0);
    this.initialized = true;
    this.setState({ hasOlder: page.hasMore });
    if (generation === this.generation && this.recoveringMessages) this.finishMessageRecovery();
  }

  private requestSync(type: SyncType, after: number): void {
    // A client_id ties a rate_limited answer to this request, to ask again a little later.
    const clientId = this.newClientId();
    this.lastSync.set(type, { clientId, after });
    this.sendFrame({ type, after, client_id: clientId });
  }

  private onHistoryPage(frame: HistoryFrame): void {
    if (!this.recoveringMessages) return;
    this.addMessages(frame.messages);
    const last = frame.messages.at(-1)?.id;
    if (frame.has_more && last !== undefined) {
      this.syncedThrough = Math.max(this.syncedThrough, last); // pages are contiguous
      this.requestSync('chat.sync', last);
    } else {
      this.syncedThrough = Math.max(this.syncedThrough, last ?? 0);
      this.finishMessageRecovery();
    }
  }

  private finishMessageRecovery(): void {
    this.recoveringMessages = false;
    this.attemptsBeforeStable = 0;
    // Live frames of this socket continue where the recovery ended: together, no gap.
    this.syncedThrough = Math.max(this.syncedThrough, this.liveMaxId);
  }

  private onChangesPage(frame: ChangesFrame): void {
    if (!this.recoveringChanges) return;
    this.setState({ messages: replaceLoaded(this.snapshot.messages, frame.messages) });
    const last = frame.messages.at(-1)?.change_seq;
    if (last !== undefined) this.changeCursor = Math.max(this.changeCursor, last);
    if (frame.has_more && last !== undefined) {
      this.requestSync('chat.sync_changes', last);
    } else {
      this.recoveringChanges = false;
      this.changeCursor = Math.max(this.changeCursor, this.liveMaxChange);
    }
  }

  private onLiveMessage(message: ChatMessage): void {
    if (this.recoveringMessages) this.liveMaxId = Math.max(this.liveMaxId, message.id);
    else this.syncedThrough = Math.max(this.syncedThrough, message.id);
    this.addMessages([message]);
  }

  /** The public room's echo (no id, not kept in `messages`): the broadcast carries the
   * sender's client_id, which acknowledges the pending message it answers. */
  private onPublicMessage(frame: PublicChatMessage): void {
    const clientId = frame.client_id;
    if (clientId === null || !this.snapshot.pending.some((p) => p.clientId === clientId)) return;
    this.resends.delete(clientId);
    this.setState({ pending: this.snapshot.pending.filter((p) => p.clientId !== clientId) });
  }

  private applyChange(frame: ChangeFrame): void {
    const messages = this.snapshot.messages;
    if (frame.type === 'chat.message.updated') {
      this.setState({ messages: applyUpdated(messages, frame) });
    } else if (frame.type === 'chat.message.deleted') {
      this.setState({ messages: applyDeleted(messages, frame) });
    } else {
      this.setState({ messages: applyReactions(messages, frame) });
    }
  }

  /** A REST history page, merged; live changes that overtook it are applied again after it. */
  private async historyPage(
    opts: { before?: number; limit: number },
    kind: HistoryEvent['kind'],
  ): Promise<HistoryPage> {
    this.restLoads++;
    try {
      const page = await this.client.history(this.roomId, opts);
      const added = this.addMessages(page.messages, false);
      for (const frame of this.changesDuringRest) this.applyChange(frame);
      this.emit('history', { kind, messages: added });
      return page;
    } finally {
      if (--this.restLoads === 0) this.changesDuringRest = [];
    }
  }

  private liveChange(changeSeq: number): void {
    if (this.recoveringChanges) this.liveMaxChange = Math.max(this.liveMaxChange, changeSeq);
    else this.changeCursor = Math.max(this.changeCursor, changeSeq);
  }

  /** Merges stored messages and acknowledges pending ones they answer; returns those not seen
   * before, announced as `message` events when they are news (not history). */
  private addMessages(incoming: readonly ChatMessage[], news = true): ChatMessage[] {
    if (incoming.length === 0) return [];
    const before = this.snapshot.messages;
    const known = new Set(before.map((m) => m.id));
    const messages = mergeMessages(before, incoming);
    const meId = this.snapshot.me?.id;
    const acked = new Set(
      incoming
        .filter((m) => m.client_id !== null && (meId === undefined || m.user.id === meId))
        .map((m) => m.client_id as string),
    );
    const pending = acked.size
      ? this.snapshot.pending.filter((p) => !acked.has(p.clientId))
      : this.snapshot.pending;
    for (const id of acked) this.resends.delete(id);
    this.setState({ messages, pending });
    const added: ChatMessage[] = [];
    for (const message of incoming) {
      if (!known.has(message.id)) {
        known.add(message.id);
        added.push(message);
      }
    }
    added.sort((a, b) => a.id - b.id);
    if (news) for (const message of added) this.emit('message', message);
    return added;
  }

  private onError(frame: ErrorFrame): void {
    if (frame.closing) {
      // Decide on the frame (the close code may not survive proxies or browsers).
      const closeCode = frame.close_code ?? null;
      const decision = closeDecision(closeCode ?? 1000, frame.code);
      const handshake = !this.established;
      this.detachSocket();
      if (
        handshake &&
        frame.code === 'token_invalid' &&
        this.options.auth === 'ticket' &&
        !this.ticketRetried &&
        !this.closedByUser
      ) {
        // A ticket lives 30 s: a tab frozen between getting it and the handshake brings an
        // expired one. A fresh ticket, once; refused again, the refusal is real.
        this.ticketRetried = true;
        void this.openSocket();
        return;
      }
      const error = {
        code: frame.code,
        detail: frame.detail,
        closeCode,
        final: decision === 'stop',
      };
      if (decision !== 'stop') this.reportError(error);
      return this.decide(decision, error);
    }
    const clientId = frame.client_id;
    const error: ChatError = {
      code: frame.code,
      detail: frame.detail,
      closeCode: null,
      final: false,
    };
    if (clientId !== undefined) error.clientId = clientId;
    if (clientId !== undefined && this.retryRefusedFrame(clientId, frame.code)) return;
    if (clientId !== undefined && this.snapshot.pending.some((p) => p.clientId === clientId)) {
      this.updatePending(clientId, { state: 'failed', error });
    }
    this.reportError(error);
  }

  /** A sync page or a message the server could not take now is asked for again later. */
  private retryRefusedFrame(clientId: string, code: string): boolean {
    for (const [type, sync] of this.lastSync) {
      if (sync.clientId !== clientId) continue;
      if (code !== 'rate_limited') return false;
      this.later(() => this.requestSync(type, sync.after), 1_000);
      return true;
    }
    const message = this.snapshot.pending.find((p) => p.clientId === clientId);
    if (!message || !TRANSIENT_CODES.has(code)) return false;
    const resends = (this.resends.get(clientId) ?? 0) + 1;
    if (resends > MAX_TRANSIENT_RESENDS) return false;
    this.resends.set(clientId, resends);
    this.updatePending(clientId, { state: 'queued' });
    this.later(() => {
      const current = this.snapshot.pending.find((p) => p.clientId === clientId);
      if (current?.state === 'queued') this.transmit(current);
    }, 1_000 * resends);
    return true;
  }

  /** A timer of the current socket, cleared when it goes. */
  private later(fn: () => void, delayMs: number): void {
    const timer = setTimeout(() => {
      this.socketTimers.delete(timer);
      fn();
    }, delayMs);
    this.socketTimers.add(timer);
  }

  private reportError(error: ChatError): void {
    this.setState({ error });
    this.emit('error', error);
  }

  // --- presence and typing -------------------------------------------------------------------

  private async loadPresence(generation: number): Promise<void> {
    this.presenceLog = [];
    let online: User[];
    try {
      online = await this.client.presence(this.roomId);
    } catch {
      // Presence is best effort; frames keep it from here. No answer will replay the log.
      if (generation === this.generation) this.presenceLog = null;
      return;
    }
    if (generation !== this.generation || !this.presenceLog) return;
    const later = this.presenceLog;
    this.presenceLog = null;
    // The same people as before (a reconnect): the same array, so nothing renders again.
    const current = this.snapshot.online;
    const same =
      online.length === current.length && online.every((u, i) => sameUser(u, current[i]!));
    if (!same) this.setState({ online });
    for (const frame of later) this.applyPresence(frame);
  }

  private applyPresence(frame: PresenceFrame): void {
    if (frame.status !== 'online') return this.forgetUser(frame.user.id);
    // Someone already online (a second tab, a replayed frame) changes nothing: keep the array.
    const online = this.snapshot.online;
    const index = online.findIndex((u) => u.id === frame.user.id);
    if (index < 0) return this.setState({ online: [...online, frame.user] });
    if (sameUser(online[index]!, frame.user)) return;
    const next = online.slice();
    next[index] = frame.user;
    this.setState({ online: next });
  }

  private onTyping(frame: TypingFrame): void {
    const id = frame.user.id;
    if (id === this.snapshot.me?.id) return;
    clearTimeout(this.typingTimers.get(id));
    this.typingTimers.delete(id);
    const others = this.snapshot.typing.filter((u) => u.id !== id);
    if (!frame.is_typing) {
      if (others.length !== this.snapshot.typing.length) this.setState({ typing: others });
      return;
    }
    // The server ends typing after 5 s of silence; a lost frame must not leave it on screen.
    this.typingTimers.set(
      id,
      setTimeout(() => {
        this.typingTimers.delete(id);
        this.setState({ typing: this.snapshot.typing.filter((u) => u.id !== id) });
      }, this.options.typingTimeoutMs),
    );
    this.setState({ typing: [...others, frame.user] });
  }

  private forgetUser(id: number): void {
    const online = this.snapshot.online.filter((u) => u.id !== id);
    const typing = this.snapshot.typing.filter((u) => u.id !== id);
    if (
      online.length !== this.snapshot.online.length ||
      typing.length !== this.snapshot.typing.length
    ) {
      this.setState({ online, typing });
    }
  }

  private clearTyping(): void {
    for (const timer of this.typingTimers.values()) clearTimeout(timer);
    this.typingTimers.clear();
    if (this.snapshot.typing.length) this.setState({ typing: [] });
  }

  // --- outbox --------------------------------------------------------------------------------

  private transmit(message: PendingMessage): void {
    const frame: ClientFrame = {
      type: 'chat.message',
      message: message.text,
      client_id: message.clientId,
    };
    if (message.replyTo !== undefined) frame.reply_to = message.replyTo;
    if (message.attachments) frame.attachments = message.attachments;
    if (this.sendFrame(frame)) this.updatePending(message.clientId, { state: 'sent' });
  }

  private flushOutbox(limit = OUTBOX_BURST): void {
    let left = limit;
    for (const message of this.snapshot.pending) {
      if (message.state !== 'queued') continue;
      if (left-- === 0) return this.paceOutbox();
      this.transmit(message);
    }
    while (this.queuedActions.length && this.isOpen()) {
      if (left-- === 0) return this.paceOutbox();
      this.sendFrame(this.queuedActions.shift()!);
    }
    this.flushRead();
  }

  private paceOutbox(): void {
    this.flushRead();
    this.outboxTimer ??= setTimeout(() => {
      this.outboxTimer = null;
      if (this.isOpen()) this.flushOutbox(OUTBOX_PER_SECOND);
    }, 1_000);
  }

  private act(frame: ClientFrame): void {
    frame.client_id = this.newClientId();
    if (this.outboxTimer || !this.sendFrame(frame)) this.queuedActions.push(frame);
  }

  private flushRead(): void {
    const id = this.pendingRead;
    if (id === null || id <= this.lastReadSent || !this.isOpen()) return;
    // One read a second at most (the server stores one a second anyway): a fast scroll marking
    // every message would pass the read budget, and 20 rate_limited in a row close with 4429.
    const wait = this.lastReadAt + READ_INTERVAL_MS - Date.now();
    if (wait > 0) {
      this.readTimer ??= setTimeout(() => {
        this.readTimer = null;
        this.flushRead();
      }, wait);
      return;
    }
    if (this.sendFrame({ type: 'read', message_id: id })) {
      this.lastReadSent = id;
      this.lastReadAt = Date.now();
      this.pendingRead = null;
    }
  }

  private updatePending(clientId: string, patch: Partial<PendingMessage>): void {
    this.setState({
      pending: this.snapshot.pending.map((p) => (p.clientId === clientId ? { ...p, ...patch } : p)),
    });
  }

  private newClientId(): string {
    return `${this.idPrefix}-${++this.idCounter}`;
  }

  // --- liveness ------------------------------------------------------------------------------

  private startPing(): void {
    this.stopPing();
    const period = this.options.pingIntervalMs;
    if (period <= 0) return;
    this.heardSincePing = true;
    let unanswered = 0;
    this.pingTimer = setInterval(() => {
      // A half-open socket (a laptop's sleep, a dropped NAT entry) never closes by itself.
      // Silence is counted in pings left unanswered, not in time since the last frame: a
      // background tab's timers may run once a minute, long after a prompt pong.
      unanswered = this.heardSincePing ? 0 : unanswered + 1;
      if (unanswered >= 2) {
        this.detachSocket(4000);
        return this.scheduleRetry();
      }
      this.heardSincePing = false;
      this.sendFrame({ type: 'ping' });
    }, period);
  }

  private stopPing(): void {
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.pingTimer = null;
  }

  // --- state ---------------------------------------------------------------------------------

  private setState(patch: Partial<ConnectionSnapshot>): void {
    const previous = this.snapshot;
    const changed = (Object.keys(patch) as (keyof ConnectionSnapshot)[]).some(
      (key) => patch[key] !== previous[key],
    );
    if (!changed) return;
    this.snapshot = { ...previous, ...patch };
    for (const listener of [...this.listeners]) listener();
    if (this.snapshot.status !== previous.status) this.emit('status', this.snapshot.status);
  }

  private emit<K extends keyof ConnectionEvents>(event: K, value: ConnectionEvents[K]): void {
    for (const fn of [...(this.eventListeners.get(event) ?? [])]) {
      (fn as Listener<ConnectionEvents[K]>)(value);
    }
  }
}

function sameUser(a: User, b: User): boolean {
  return a.id === b.id && a.username === b.username && a.is_bot === b.is_bot;
}

function assertNever(frame: never): never {
  throw new Error(`unhandled frame type: ${(frame as { type?: string }).type}`);
}

/** Network errors, 5xx and 429: the server may answer later; other refusals are final. */
function isTransient(error: unknown): error is ChatApiError {
  return (
    error instanceof ChatApiError &&
    (error.status === 0 || error.status >= 500 || error.status === 429)
  );
}

function asChatError(error: unknown, final: boolean): ChatError {
  if (error instanceof ChatApiError) {
    return { code: error.code, detail: error.detail, closeCode: null, final };
  }
  const detail = error instanceof Error ? error.message : String(error);
  return { code: 'client_error', detail, closeCode: null, final };
}

function randomId(): string {
  const crypto = (globalThis as { crypto?: { randomUUID?: () => string } }).crypto;
  if (crypto?.randomUUID) return crypto.randomUUID().slice(0, 18);
  return Math.random().toString(36).slice(2, 12) + Date.now().toString(36);
}
