"""The order service's Lambda code."""
