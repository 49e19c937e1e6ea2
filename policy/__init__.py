"""The store's infrastructure invariants, as plain functions over a resource graph."""
