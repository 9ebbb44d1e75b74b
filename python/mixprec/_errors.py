"""The exception the compiled modules raise for errors the library reports."""


class Error(RuntimeError):
    """A mixprec::error from the C++ library (bad state, I/O, a refused checkpoint, ...)."""
