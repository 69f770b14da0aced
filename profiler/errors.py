"""Errors a user can cause. The CLI prints them as one line and exits with code 2."""


class InputError(Exception):
    """The user's input is wrong: a bad path, a bad model file, a bad option."""


class ModelFileError(InputError):
    """A model file that cannot be read or is not what it claims to be."""


class MissingOperatorError(InputError):
    """The .pte needs an operator the runtime was not built with."""


class EmptyETDumpError(InputError):
    """The runner wrote an ETDump with no events: it was built without the event tracer."""
