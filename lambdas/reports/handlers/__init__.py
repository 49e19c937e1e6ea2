"""The reports service's Lambda handlers: one module per function, each thin.
Importing one is the function's init phase: the garbage collector pauses until it is done
(shared.init_phase says why)."""

from shared.init_phase import pause_collection

pause_collection()
