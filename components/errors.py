"""Two kinds of failure: the user's input (fix your stack) and everything else."""


class VdeskError(Exception):
    """A problem the user can fix; the message says what and where."""


class InputError(VdeskError):
    """Invalid declared input; each problem is (field path, message)."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = list(problems)
        super().__init__("\n".join(f"{path}: {message}" for path, message in self.problems))
