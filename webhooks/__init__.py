"""Outgoing webhooks: a room's (or a record type's) changes POSTed, signed, to subscribers.

The domain's recorder (outbox.py) stores one delivery per subscription in the transaction of
the change; a worker (`manage.py deliver_webhooks`, sending.py) sends them, retrying with
backoff. Delivery is at least once: receivers dedupe by the delivery id.
"""
