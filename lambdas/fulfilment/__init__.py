"""The fulfilment service's Lambda code."""
