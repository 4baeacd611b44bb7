"""The one error type of the Dockerfile language package."""

from __future__ import annotations


class DockerfileError(ValueError):
    """A malformed Dockerfile, instruction or word; `line` is 1-based (0 when not tied to
    a line). `message` is the reference's wording, without any prefix a caller adds."""

    def __init__(self, message: str, line: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
