"""rebirth's commands, one module per area; each adds its parsers with ``register`` and sets the handler
that parses nothing more, calls one use case, and prints."""
