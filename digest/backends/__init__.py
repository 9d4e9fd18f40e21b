"""Email backends: one small class per provider behind ``EmailBackend``.

Pick one with ``get_backend(settings)`` (``digest.backends.registry``); every backend takes
``OutgoingMessage`` batches and returns one ``SendResult`` per message, raising the errors of
``digest.backends.errors`` when a whole call fails.
"""
