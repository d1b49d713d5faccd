"""Prompt text -> hashed word and character n-gram counts and a few surface measures.

The router must score with no scikit-learn and give the same numbers on every machine and
Python process, so the featurizer is ours: text is lower-cased and its whitespace collapsed;
words are ``\\w+`` runs (numbers also as their shape, digits -> 0); word n-grams are hashed
with ``zlib.crc32`` and character n-grams with a polynomial rolling hash over the UTF-32
code points, both finished by MurmurHash3's 32-bit mixer and kept to ``bits`` low bits.
Python's ``hash()`` is never used: it is salted per process. Each feature kind has its own
namespace, so "ab" as a word and as a character bigram land in different buckets.

With ``split_formats`` the n-grams of a multiple-choice prompt (two or more lines opening
with an option letter, "A." or "B)") go to a second, disjoint range of buckets: measured on
the dev sets, what words say in one format says nothing in the other (docs/ROUTING.md), so
each format learns its own word weights and neither leaks into the other. The surface
measures (by default the log of the characters and of the words; numbers and sentences are
available) are shared by every prompt: they are what carries over to prompts unlike the
training data. Numbers and sentences are left out by default: measured across domains, they
made a router trained on MMLU rank GSM8K worse than length alone (docs/ROUTING.md).
"""

from __future__ import annotations

import math
import re
import zlib
from dataclasses import asdict, dataclass, fields

import numpy as np

from ims_kit.errors import InvalidInputError

_WORD = re.compile(r"\w+")
_SPACE = re.compile(r"\s+")
_DIGIT = re.compile(r"\d")
_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")
_SENTENCE_END = re.compile(r"[.!?](?:\s|$)")
_OPTION = re.compile(r"(?m)^[A-H][.)] ")
_MASK = np.uint64(0xFFFFFFFF)
_BASE = np.uint64(0x01000193)  # FNV's 32-bit prime, as the rolling hash's multiplier
MAX_BITS = 20  # 2 x 2^20 buckets: an 8 MB document-frequency table

SURFACE = {  # name -> measure of the raw prompt; each enters the model standardised
    "log_chars": lambda text: math.log1p(len(text)),
    "log_words": lambda text: math.log1p(len(_WORD.findall(text))),
    "log_numbers": lambda text: math.log1p(len(_NUMBER.findall(text))),
    "log_sentences": lambda text: math.log1p(len(_SENTENCE_END.findall(text))),
}


@dataclass(frozen=True)
class FeatureConfig:
    """Which n-grams a prompt is cut into, the hashed space, and the surface measures."""

    bits: int = 17  # 2^bits buckets per prompt format
    word_ngrams: tuple[int, ...] = (1, 2)
    char_ngrams: tuple[int, ...] = (2, 3, 4, 5)
    number_shapes: bool = True
    split_formats: bool = True
    surface: tuple[str, ...] = ("log_chars", "log_words")
    surface_scale: float = 0.3  # the standardised measures are multiplied by this
    max_chars: int = 6000  # the head and tail of longer prompts; keeps scoring time bounded

    def __post_init__(self):
        unknown = [name for name in self.surface if name not in SURFACE]
        if unknown:
            raise InvalidInputError(
                f"unknown surface measure {', '.join(map(str, unknown))};"
                f" known: {', '.join(SURFACE)}"
            )
        if not _is_int(self.bits) or not 8 <= self.bits <= MAX_BITS:
            raise InvalidInputError(
                f"bits must be an integer from 8 to {MAX_BITS}, not {self.bits!r}"
            )
        for name in ("word_ngrams", "char_ngrams"):
            sizes = getattr(self, name)
            if not isinstance(sizes, tuple) or not all(_is_int(n) and 1 <= n <= 8 for n in sizes):
                raise InvalidInputError(f"{name} must be n-gram sizes from 1 to 8, not {sizes!r}")
        if not (self.word_ngrams or self.char_ngrams or self.surface):
            raise InvalidInputError("the features are empty: give n-grams or surface measures")
        if (
            not isinstance(self.surface_scale, int | float)
            or not 0 <= self.surface_scale < math.inf
        ):
            raise InvalidInputError(
                f"surface_scale must be a non-negative number, not {self.surface_scale!r}"
            )
        if not _is_int(self.max_chars) or self.max_chars < 100:
            raise InvalidInputError(f"max_chars must be an integer >= 100, not {self.max_chars!r}")
        for name in ("number_shapes", "split_formats"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidInputError(f"{name} must be true or false")

    def to_dict(self) -> dict:
        """JSON-ready form, as stored in a router file."""
        return asdict(self) | {
            "word_ngrams": list(self.word_ngrams),
            "char_ngrams": list(self.char_ngrams),
            "surface": list(self.surface),
        }

    @classmethod
    def from_dict(cls, data: dict) -> FeatureConfig:
        """The config of a dict (a router file's, or ``features=`` of ``train_router``)."""
        if not isinstance(data, dict):
            raise InvalidInputError(f"features must be a dict or a FeatureConfig, not {data!r}")
        data = dict(data)
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise InvalidInputError(
                f"unknown feature option {', '.join(map(str, unknown))};"
                f" known: {', '.join(f.name for f in fields(cls))}"
            )
        for key in ("word_ngrams", "char_ngrams", "surface"):
            if key in data:
                if isinstance(data[key], str) or not isinstance(data[key], list | tuple):
                    raise InvalidInputError(f"{key} must be a list, not {data[key]!r}")
                data[key] = tuple(data[key])
        return cls(**data)

    @property
    def size(self) -> int:
        """Number of hashed buckets: 2^bits, twice that when formats are split."""
        return (2 if self.split_formats else 1) << self.bits


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def normalise(text: str, max_chars: int) -> str:
    """Lower case, one space for any run of whitespace, the head and tail of a long text."""
    text = _SPACE.sub(" ", text.lower()).strip()
    if len(text) > max_chars:
        half = max_chars // 2
        text = text[:half] + " " + text[-half:]
    return text


def is_multiple_choice(text: str) -> bool:
    """Two or more lines open with an option letter ("A. ...", "B) ...")."""
    return len(_OPTION.findall(text)) >= 2


def _mix(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's fmix32 on uint64 arrays holding 32-bit values."""
    h = h ^ (h >> np.uint64(16))
    h = (h * np.uint64(0x85EBCA6B)) & _MASK
    h = h ^ (h >> np.uint64(13))
    h = (h * np.uint64(0xC2B2AE35)) & _MASK
    return h ^ (h >> np.uint64(16))


def _char_hashes(text: str, n: int) -> np.ndarray:
    """32-bit hashes of every character n-gram of ``text`` (empty if it is shorter than n)."""
    codes = np.frombuffer(text.encode("utf-32-le"), dtype="<u4").astype(np.uint64)
    count = len(codes) - n + 1
    if count <= 0:
        return np.zeros(0, dtype=np.uint64)
    h = np.full(count, np.uint64(zlib.crc32(f"c{n}".encode())), dtype=np.uint64)
    for i in range(n):
        h = (h * _BASE + codes[i : i + count]) & _MASK
    return _mix(h)


def _word_hashes(words: list[str], n: int) -> np.ndarray:
    """32-bit hashes of the word n-grams (crc32 of the namespaced, space-joined words)."""
    grams = [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]
    prefix = f"w{n}:".encode()
    raw = [zlib.crc32(prefix + g.encode()) for g in grams]
    return _mix(np.asarray(raw, dtype=np.uint64))


def buckets(text: str, config: FeatureConfig) -> tuple[np.ndarray, np.ndarray]:
    """Word and character buckets of one prompt: two int64 arrays, one entry per n-gram."""
    choice = config.split_formats and is_multiple_choice(text)
    text = normalise(text, config.max_chars)
    words = _WORD.findall(text)
    word = [_word_hashes(words, n) for n in config.word_ngrams if len(words) >= n]
    if config.number_shapes:
        shapes = ["#" + _DIGIT.sub("0", w) for w in words if w[:1].isdigit()]
        word.append(_word_hashes(shapes, 1))
    char = [_char_hashes(f" {text} ", n) for n in config.char_ngrams]
    return _to_buckets(word, config, choice), _to_buckets(char, config, choice)


def _to_buckets(parts: list[np.ndarray], config: FeatureConfig, choice: bool) -> np.ndarray:
    if not parts:
        return np.zeros(0, dtype=np.int64)
    low = (np.concatenate(parts) & np.uint64((1 << config.bits) - 1)).astype(np.int64)
    return low + (1 << config.bits) if choice else low


def surface(text: str, config: FeatureConfig) -> np.ndarray:
    """The raw surface measures of a prompt, in ``config.surface`` order."""
    return np.array([SURFACE[name](text) for name in config.surface], dtype=np.float64)


@dataclass(frozen=True)
class PromptFeatures:
    """One prompt's features: per block (words, characters) its distinct buckets and their
    counts, and its raw surface measures."""

    blocks: tuple[tuple[np.ndarray, np.ndarray], ...]
    surface: np.ndarray


def extract(text: str, config: FeatureConfig) -> PromptFeatures:
    """Everything the scorer reads of one prompt."""
    blocks = tuple(np.unique(b, return_counts=True) for b in buckets(text, config))
    return PromptFeatures(blocks=blocks, surface=surface(text, config))
