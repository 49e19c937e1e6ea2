"""The reports service's Lambda handlers: one module per function, each thin."""
