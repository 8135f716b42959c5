"""The service layer: plain functions taking a SQLAlchemy session; no Flask request in here."""
