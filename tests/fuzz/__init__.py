"""Fuzz tests: hostile input for the decoders, the ingest endpoints and every route of the OpenAPI document."""
