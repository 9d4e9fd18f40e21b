"""Provider webhooks: verify each provider's signature on the raw request, normalize its events
to ``NormalizedEvent``, store them once and apply their effects (suppression, delivery status).

The web application mounts ``digest.webhooks.routes.webhook_routes(settings, engine)``. This
package module imports nothing heavy, so that loading ``digest.webhooks.models`` stays cheap.
"""

from digest.webhooks.events import BounceKind, EventType, NormalizedEvent

__all__ = ["BounceKind", "EventType", "NormalizedEvent"]
