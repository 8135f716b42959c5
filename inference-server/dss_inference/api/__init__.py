"""Blueprints by resource: inference jobs, and the service endpoints (models, health, metrics)."""
from . import inference, service

BLUEPRINTS = (inference.bp, service.bp)
