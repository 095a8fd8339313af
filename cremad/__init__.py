"""cremad: attention in recurrent networks for speech emotion recognition on CREMA-D."""

__version__ = "0.1.0"


class CremadError(Exception):
    """An input the user can fix (a path, a name, an argument); the CLI prints it on one line
    and exits with status 2."""


class FoldsFailedError(CremadError):
    """Folds that failed on every try; the others are done."""

    def __init__(self, failed: list[str]):
        self.failed = list(failed)
        super().__init__(f"{len(failed)} fold(s) failed: {', '.join(failed)}; rerun to retry them")
