import { describe, expect, it } from 'vitest';
import { roomPath, routeOf } from '../src/router';

describe('router', () => {
  it('reads a room address back', () => {
    const id = 'ad36ed7e-0000-4000-8000-000000000000';
    expect(routeOf(roomPath(id))).toEqual({ page: 'room', roomId: id });
    expect(routeOf('/')).toEqual({ page: 'rooms' });
    expect(routeOf('/rooms/')).toEqual({ page: 'rooms' });
    expect(routeOf('/elsewhere')).toEqual({ page: 'rooms' });
  });
});
