"""The real-time tier: consumers, fan-out, handshakes, WebSocket auth, liveness,
presence, delivery of the domain's events, and the mapping refusal -> frame."""
