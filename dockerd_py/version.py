"""Versions this daemon reports."""

VERSION = "28.2.2-dockerd-py"       # the Engine release whose API we follow, plus our name
API_VERSION = "1.50"
MIN_API_VERSION = "1.24"
GIT_COMMIT = "dockerd-py"


def parse_api_version(text: str) -> tuple[int, int]:
    major, _, minor = text.partition(".")
    return int(major), int(minor or 0)
