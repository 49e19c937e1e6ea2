"""The store's services, each a ComponentResource composed from components/."""
