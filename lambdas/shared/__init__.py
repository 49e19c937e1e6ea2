"""Code every service's Lambda package ships: event contracts, observability, settings."""
