"""Blueprints by resource; each view parses the request, calls a service, answers in DSS format."""
from . import admin, auth, blobs, health, openapi, provider, services, tickets

BLUEPRINTS = (auth.bp, services.bp, tickets.bp, provider.bp, admin.bp, blobs.bp, health.bp,
              openapi.bp)
