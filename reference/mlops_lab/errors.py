"""The one base class for errors whose message is written for the person at the keyboard.

    python -c "from mlops_lab.errors import UserError; help(UserError)"

Raise a `UserError` (or a subclass) when the user can act on the message: a missing file, an
unknown version, a port in use, a retrain already running. The CLI prints it as one line and
exits with its `exit_code` (1: the operation failed; 2: the command was used wrongly). Every
other exception is a bug: the CLI shows its traceback and asks for a report. So never catch a
broad exception to re-raise it as a UserError: that turns a bug into a misleading message.
"""

from __future__ import annotations


class UserError(Exception):
    """An error the user can fix or act on; its message is the whole story (no traceback)."""

    exit_code = 1


class UsageError(UserError):
    """The command was called wrongly (bad option value, bad file type, bad setting)."""

    exit_code = 2


# The three below are also the built-in exception a library caller would expect (ValueError,
# FileNotFoundError), so code that validates input can catch them the usual way.


class InvalidValue(UsageError, ValueError):
    """A value the user passed is not one the command accepts (a scenario, a run id, a file type)."""


class MissingFile(UsageError, FileNotFoundError):
    """A file the user named does not exist."""


class BadData(UserError, ValueError):
    """The user's data does not fit the schema or the operation (the message says which rows)."""


class BrokenStateFile(UserError, ValueError):
    """A state file under home/ cannot be read; the message names it and how to recover."""
