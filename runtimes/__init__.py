"""The runtimes the one Pulumi program runs in, besides AWS itself (docs/design.md §2): the recording mocks
(recording.py: tests, policy checks, the offline preview, the diagram) and the materialising mocks
(materialize.py: the local cloud of `make dev`)."""
