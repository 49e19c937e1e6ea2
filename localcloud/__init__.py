"""The local cloud (`make dev`; docs/design.md §2): the program materialised on this machine, the local
fakes of the services it depends on, and what drives it (demo, chaos, bench)."""
