"""Email backends: one small class per provider behind ``EmailBackend``.

Pick one with ``get_backend(settings)`` (``digest.backends.registry``); every backend takes
``OutgoingMessage`` batches and returns one ``SendResult`` per message, raising the errors of
``digest.backends.errors`` when a whole call fails. Each backend declares its documented
``max_batch_size`` and a ``default_rate``; ``effective_send_rate`` (``digest.backends.base``) is
the rate a send uses. SendGrid and Mailgun send one call per content variant from the
message's templates and slot values (``digest.backends.merge``).
"""
