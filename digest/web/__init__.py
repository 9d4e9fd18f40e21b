"""The public web app: sign-up, confirmation, unsubscribe and preference pages, health and
metrics, mounted with the provider webhooks. Build it with ``digest.web.app.create_app``."""
