import { describe, expect, test } from 'vitest';
import { backoffDelay, closeDecision, MAX_BACKOFF_MS } from '../../src/index.js';

describe('closeDecision', () => {
  test.each([
    [1000, undefined, 'retry'],
    [1001, undefined, 'retry'],
    [1006, undefined, 'retry'],
    [1011, 'internal_error', 'retry'],
    [1013, 'service_unavailable', 'retry'],
    [4000, undefined, 'stop'],
    [4401, 'token_expired', 'refresh'],
    [4401, 'token_invalid', 'stop'],
    [4401, 'user_inactive', 'stop'],
    [4401, undefined, 'stop'],
    [4403, 'removed_from_room', 'stop'],
    [4403, 'not_a_member', 'stop'],
    [4404, 'room_not_found', 'stop'],
    [4429, 'rate_limited', 'stop'],
    [1003, 'binary_not_supported', 'stop'],
    [1009, 'frame_too_big', 'stop'],
  ] as const)('close %i (%s) → %s', (code, errorCode, decision) => {
    expect(closeDecision(code, errorCode)).toBe(decision);
  });
});

describe('backoffDelay', () => {
  test('doubles from 1 s, between half and all of the step', () => {
    expect([1, 2, 3, 4].map((n) => backoffDelay(n, () => 1))).toEqual([1000, 2000, 4000, 8000]);
    expect([1, 2, 3, 4].map((n) => backoffDelay(n, () => 0))).toEqual([500, 1000, 2000, 4000]);
  });

  test('is capped at 30 s however many attempts failed', () => {
    expect(backoffDelay(6, () => 1)).toBe(MAX_BACKOFF_MS);
    expect(backoffDelay(1_000, () => 1)).toBe(30_000);
    expect(backoffDelay(1_000, () => 0)).toBe(15_000);
  });

  test('spreads clients that dropped together', () => {
    const delays = new Set(Array.from({ length: 20 }, () => backoffDelay(5)));
    expect(delays.size).toBeGreaterThan(10);
    for (const delay of delays) expect(delay).toBeGreaterThanOrEqual(8_000);
  });

  test('no wait before the first connection', () => {
    expect(backoffDelay(0)).toBe(0);
  });
});
