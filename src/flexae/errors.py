"""Errors raised by flexae for problems a user can fix."""


class UserError(Exception):
    """An error caused by user input; the CLI prints its message on one line, without traceback."""
