"""The reports service's Lambda code."""
