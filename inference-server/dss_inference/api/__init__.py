"""Blueprints: inference jobs, and the service endpoints (models, health, metrics)."""
from .inference import bp as inference_bp
from .service import bp as service_bp

blueprints = (inference_bp, service_bp)
