"""cremad: attention in recurrent networks for speech emotion recognition on CREMA-D."""

__version__ = "0.1.0"


class CremadError(Exception):
    """An input the user can fix (a path, a name, an argument); the CLI prints it on one line
    and exits with status 2."""
