"""The chat's domain: models, the access rule, services (writes), selectors
(reads), refusals and the events it announces. It imports neither chat.api nor
chat.realtime nor chat.adapters (.importlinter)."""
