"""The local cloud (DESIGN.md §2, runtime 3) and the local fakes of the services we depend on."""
