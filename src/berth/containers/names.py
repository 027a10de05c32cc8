"""Random container names in Docker's `adjective_surname` style, and name validation."""

from __future__ import annotations

import re
import secrets

from berth.errors import InvalidArgument

_LEFT = [
    "admiring", "adoring", "affectionate", "agitated", "amazing", "angry", "awesome", "blissful",
    "bold", "boring", "brave", "charming", "clever", "compassionate", "competent", "confident",
    "cool", "dazzling", "determined", "dreamy", "eager", "ecstatic", "elastic", "elated",
    "elegant", "epic", "exciting", "fervent", "festive", "flamboyant", "focused", "friendly",
    "frosty", "funny", "gallant", "gifted", "goofy", "gracious", "great", "happy", "hardcore",
    "heuristic", "hopeful", "hungry", "infallible", "inspiring", "intelligent", "interesting",
    "jolly", "jovial", "keen", "kind", "laughing", "loving", "lucid", "magical", "modest",
    "musing", "mystifying", "naughty", "nervous", "nice", "nifty", "nostalgic", "objective",
    "optimistic", "peaceful", "pedantic", "pensive", "practical", "priceless", "quirky",
    "quizzical", "recursing", "relaxed", "reverent", "romantic", "sad", "serene", "sharp",
    "silly", "sleepy", "stoic", "strange", "stupefied", "suspicious", "sweet", "tender",
    "thirsty", "trusting", "unruffled", "upbeat", "vibrant", "vigilant", "vigorous", "wizardly",
    "wonderful", "xenodochial", "youthful", "zealous", "zen",
]
_RIGHT = [
    "albattani", "allen", "almeida", "archimedes", "ardinghelli", "babbage", "banach", "bardeen",
    "bartik", "bassi", "bell", "benz", "bhabha", "bohr", "booth", "borg", "bose", "brahmagupta",
    "brown", "burnell", "cannon", "carson", "cerf", "chandrasekhar", "chaplygin", "clarke",
    "cohen", "curie", "darwin", "davinci", "dijkstra", "dirac", "driscoll", "easley", "einstein",
    "elion", "engelbart", "euclid", "euler", "faraday", "fermat", "fermi", "feynman", "franklin",
    "galileo", "gates", "goldberg", "goodall", "hamilton", "hawking", "heisenberg", "hopper",
    "hodgkin", "hypatia", "jackson", "jang", "jennings", "johnson", "kalam", "kare", "keller",
    "kepler", "knuth", "kowalevski", "lalande", "lamarr", "lamport", "leakey", "lovelace",
    "lumiere", "mayer", "mccarthy", "mcclintock", "meitner", "mendel", "merkle", "mirzakhani",
    "montalcini", "moore", "morse", "napier", "nash", "newton", "nightingale", "nobel", "noether",
    "pare", "pascal", "pasteur", "payne", "perlman", "pike", "poincare", "ptolemy", "raman",
    "ramanujan", "ride", "ritchie", "rosalind", "saha", "sammet", "shannon", "shockley",
    "sinoussi", "stonebraker", "swanson", "tesla", "thompson", "torvalds", "turing", "varahamihira",
    "visvesvaraya", "wescoff", "wilbur", "wiles", "williams", "wilson", "wing", "wozniak",
    "wright", "yalow", "yonath",
]

_VALID = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")


def random_name() -> str:
    return f"{secrets.choice(_LEFT)}_{secrets.choice(_RIGHT)}"


def validate(name: str) -> str:
    if not _VALID.match(name):
        raise InvalidArgument(
            f'Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed')
    return name.lstrip("/")
