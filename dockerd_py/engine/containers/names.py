"""Container names: validation and dockerd-style random names (adjective_surname)."""

from __future__ import annotations

import random
import re

from ...errors import InvalidParameter

# Always fullmatch: with match(), `$` would also pass a name ending in "\n".
VALID_NAME = re.compile(r"/?[a-zA-Z0-9][a-zA-Z0-9_.-]+")

_ADJECTIVES = (
    "agile", "amazing", "bold", "brave", "bright", "calm", "clever", "cool", "curious",
    "daring", "eager", "elegant", "epic", "fervent", "focused", "gallant", "gentle", "happy",
    "hopeful", "jolly", "keen", "kind", "lucid", "merry", "modest", "nifty", "noble",
    "patient", "peaceful", "quirky", "relaxed", "serene", "sharp", "steady", "sunny", "swift",
    "tender", "upbeat", "vibrant", "wise", "witty", "zealous",
)
# People who shaped computing and science.
_SURNAMES = (
    "babbage", "backus", "bohr", "boole", "cerf", "curie", "darwin", "dijkstra", "einstein",
    "euler", "faraday", "fermi", "feynman", "gauss", "goldberg", "hamilton", "hopper",
    "hypatia", "kepler", "knuth", "lamarr", "lamport", "liskov", "lovelace", "maxwell",
    "meitner", "mirzakhani", "newton", "noether", "pascal", "ritchie", "shannon", "somerville",
    "thompson", "torvalds", "turing", "vaughan", "wozniak", "yalow", "zuse",
)


def validate(name: str) -> str:
    """The name without its leading '/', or InvalidParameter with dockerd's message."""
    if not VALID_NAME.fullmatch(name):  # fullmatch: "$" would let a final newline in
        raise InvalidParameter(
            f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    return name.lstrip("/")


def random_name(taken: set[str]) -> str:
    for attempt in range(100):
        name = f"{random.choice(_ADJECTIVES)}_{random.choice(_SURNAMES)}"
        if attempt > 10:
            name += str(random.randint(0, 99))
        if name not in taken:
            return name
    raise InvalidParameter("could not generate a unique container name")
