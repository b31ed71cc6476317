"""Domain errors of the control plane; the API maps each class to one HTTP status."""


class ControlError(Exception):
    """Base: the message is shown to the user as is."""


class NotFound(ControlError):
    pass


class Conflict(ControlError):
    pass


class Invalid(ControlError):
    pass


class Forbidden(ControlError):
    pass


class Unavailable(ControlError):
    """What was asked is kept by another process that does not answer (issue 14)."""
