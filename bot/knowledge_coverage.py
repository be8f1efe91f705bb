"""Which facts of the source documents no article holds.

A seed sentence is a *fact* when it holds a figure (a number, an amount, a year, a share) or
a quoted name (of a programme, a system, a document). It is covered when every figure in it
appears in some article (in either language, compared by value, so "48万元" covers
"480000 yuan" and "13.35亿" covers "1.335 billion") and every quoted name appears in one.
`nuanxin knowledge coverage` lists the sentences that are not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from bot.knowledge import KnowledgeBase
from bot.qa_text import to_simplified

_ROOT = Path(__file__).resolve().parent.parent


def find_seeds_dir() -> Path | None:
    """shared/seeds beside the checkout (or one level further up, beside a worktree folder)."""
    for parent in (_ROOT.parent, _ROOT.parent.parent):
        if (parent / "shared" / "seeds").is_dir():
            return parent / "shared" / "seeds"
    return None

_NUMBER = re.compile(r"(\d+(?:[.,]\d+)*)\s*(万亿|亿|万|千|百|million|billion|trillion|%|％)?", re.IGNORECASE)
_QUOTED = re.compile(r"[“\"《]([^”\"》]{2,30})[”\"》]")
_SENTENCE = re.compile(r"(?<=[。！？!?；;])|(?<=\.)\s+|\n+")
_MULTIPLIER = {"万亿": 1e12, "亿": 1e8, "万": 1e4, "千": 1e3, "百": 1e2, "million": 1e6, "billion": 1e9,
               "trillion": 1e12}
# Figures too small or too common to be a fact on their own (list numbering, "one-to-one").
_TRIVIAL = {1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0}


@dataclass(frozen=True)
class Gap:
    seed: str
    sentence: str
    missing: list[str]


def _values(text: str) -> set[float]:
    found = set()
    for number, unit in _NUMBER.findall(text):
        try:
            value = float(number.replace(",", ""))
        except ValueError:
            continue
        unit = (unit or "").lower()
        found.add(round(value * _MULTIPLIER.get(unit, 1.0), 4))
        found.add(round(value, 4))
    return found


def _figures(sentence: str) -> list[tuple[str, float]]:
    figures = []
    for match in _NUMBER.finditer(sentence):
        number, unit = match.group(1), (match.group(2) or "").lower()
        try:
            value = float(number.replace(",", ""))
        except ValueError:
            continue
        if value in _TRIVIAL and not unit:
            continue
        figures.append((match.group(0).strip(), round(value * _MULTIPLIER.get(unit, 1.0), 4)))
    return figures


def seed_sentences(seeds_dir: Path) -> list[tuple[str, str]]:
    """(seed id, sentence) for every sentence of every seed document."""
    out = []
    for path in sorted(seeds_dir.glob("*.txt")):
        seed = path.name.split("_", 1)[0]
        text = to_simplified(path.read_text(encoding="utf-8"))
        for sentence in _SENTENCE.split(text):
            sentence = sentence.strip()
            if len(sentence) >= 8:
                out.append((seed, sentence))
    return out


def coverage_gaps(knowledge: KnowledgeBase, seeds_dir: Path) -> list[Gap]:
    corpus = "\n".join(to_simplified(f"{a.title}\n{a.body}\n{a.sms}") for a in knowledge.articles)
    known = _values(corpus)
    lowered = corpus.lower()
    gaps = []
    for seed, sentence in seed_sentences(seeds_dir):
        missing = [shown for shown, value in _figures(sentence) if value not in known]
        missing += [name for name in _QUOTED.findall(sentence) if name.lower() not in lowered]
        if missing:
            gaps.append(Gap(seed, sentence, missing))
    return gaps
