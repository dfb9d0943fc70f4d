"""Domain errors: the CLI prints them as one line and exits 1."""


class AftercareError(Exception):
    """Something the user can fix: bad input or a request the current state does not allow."""


class InputError(AftercareError, ValueError):
    """Bad input: an invalid phone number, time zone, date or treatment."""


class NotFound(AftercareError, LookupError):
    """A clinic, patient, enrollment or escalation that does not exist."""
