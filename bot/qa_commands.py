"""`nuanxin ask` and `nuanxin eval-qa`: the Q&A from the command line.

Heavy modules (rjieba, OpenCC, bm25s) are imported inside the commands so that
`nuanxin --help` stays fast.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from bot.qa import QA, Answer

DEFAULT_EVAL_FILE = Path(__file__).resolve().parent.parent / "tests" / "qa" / "eval.yaml"
PASS_ACCURACY = 0.90


def register(app: typer.Typer) -> None:
    """Add the `ask` and `eval-qa` commands to the main CLI."""
    app.command("ask")(ask)
    app.command("eval-qa")(eval_qa)


def ask(
    question: str = typer.Argument(..., help="The question, as a beneficiary would write it."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object: handoff, answer, sources, lang."),
    lang: str | None = typer.Option(None, "--lang", help="Language hint: zh-Hans, zh-Hant or en."),
    sms: bool = typer.Option(False, "--sms", help="Print the short SMS variant instead of the full answer."),
) -> None:
    """Answer a policy question from the knowledge base, or say it would go to staff."""
    from bot.qa import get_qa

    result = get_qa().answer(question, lang_hint=lang)
    text = result.sms if sms else result.answer
    if as_json:
        payload = {"handoff": result.handoff, "answer": text, "sources": result.sources, "lang": result.lang}
        typer.echo(json.dumps(payload, ensure_ascii=False))
        return
    if result.handoff:
        typer.echo(f"[handed to staff: {result.reason}]")
    typer.echo(text)


# --------------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class EvalCase:
    question: str
    expect: tuple[str, ...] = ()
    must: tuple[str, ...] = ()
    handoff: str | None = None  # expected handoff reason, None when an answer is expected
    lang: str | None = None
    pattern: str = "plain"  # how it is asked (voice, typo, cantonese, other_place, ...), for the report

    @property
    def split(self) -> str:
        return split_of(self.question)


@dataclass
class EvalResult:
    total: int = 0
    correct: int = 0
    # handoff as the positive class: did the bot hand off exactly when it should?
    true_handoffs: int = 0
    false_handoffs: int = 0
    missed_handoffs: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0

    @property
    def handoff_precision(self) -> float:
        predicted = self.true_handoffs + self.false_handoffs
        return self.true_handoffs / predicted if predicted else 1.0

    @property
    def handoff_recall(self) -> float:
        actual = self.true_handoffs + self.missed_handoffs
        return self.true_handoffs / actual if actual else 1.0

    def summary(self) -> dict[str, Any]:
        return {"questions": self.total, "accuracy": round(self.accuracy, 4),
                "handoff_precision": round(self.handoff_precision, 4),
                "handoff_recall": round(self.handoff_recall, 4), "failures": len(self.failures)}


def split_of(question: str) -> str:
    """A stable dev/held-out split: about a quarter of the questions are held out from calibration."""
    return "holdout" if hashlib.sha1(question.encode("utf-8")).digest()[0] % 4 == 0 else "dev"


def load_eval_cases(path: Path = DEFAULT_EVAL_FILE) -> list[EvalCase]:
    import yaml

    cases = []
    for number, item in enumerate(yaml.safe_load(path.read_text(encoding="utf-8")) or [], start=1):
        if not isinstance(item, dict) or not item.get("q"):
            raise ValueError(f"{path}: case {number} has no question 'q'")
        if not item.get("handoff") and not item.get("expect") and not item.get("must"):
            raise ValueError(f"{path}: case {number} needs 'expect' (article ids), 'must' (facts) "
                             "or 'handoff' (a reason)")
        cases.append(EvalCase(question=str(item["q"]), expect=tuple(item.get("expect") or ()),
                              must=tuple(str(m) for m in item.get("must") or ()),
                              handoff=item.get("handoff"), lang=item.get("lang"),
                              pattern=str(item.get("pattern") or "plain")))
    return cases


def judge(case: EvalCase, answer: Answer) -> str | None:
    """None when the answer is right, else what is wrong with it."""
    from bot.qa import to_simplified

    if case.lang and answer.lang != case.lang:
        return f"replied in {answer.lang}, expected {case.lang}"
    if case.handoff:
        if not answer.handoff:
            return f"answered with {answer.article_id}, expected handoff ({case.handoff})"
        if answer.reason != case.handoff:
            return f"handed off as {answer.reason}, expected {case.handoff}"
        return None
    if answer.handoff:
        return f"handed off ({answer.reason}), expected {', '.join(case.expect)}"
    if case.expect and answer.article_id not in case.expect:
        return f"answered with {answer.article_id}, expected {', '.join(case.expect)}"
    text = to_simplified(answer.answer).lower()
    missing = [m for m in case.must if to_simplified(m).lower() not in text]
    if missing:
        return f"answer lacks {missing}"
    if not answer.sources:
        return "answer has no source"
    return None


def run_eval(qa: QA, cases: list[EvalCase]) -> EvalResult:
    result = EvalResult()
    for case in cases:
        answer = qa.answer(case.question)
        problem = judge(case, answer)
        result.total += 1
        result.correct += problem is None
        if answer.handoff and case.handoff:
            result.true_handoffs += 1
        elif answer.handoff:
            result.false_handoffs += 1
        elif case.handoff:
            result.missed_handoffs += 1
        if problem:
            result.failures.append({"question": case.question, "split": case.split, "problem": problem,
                                    "score": answer.score})
    return result


def calibrate(qa: QA, cases: list[EvalCase]) -> dict[str, dict[str, float]]:
    """Best (min_score, min_coverage) per language on the given cases, by accuracy.

    Rule-based handoffs do not depend on the thresholds and are left out. Ties go to the
    lowest thresholds that reach the best accuracy, so the bot answers whenever it can.
    """
    from bot.qa import detect_language

    observed: dict[str, list[tuple[float, float, bool, bool]]] = {"zh-Hans": [], "en": []}
    for case in cases:
        figures = qa.explain(case.question)
        if figures["rule"]:
            continue
        base = "en" if detect_language(case.question) == "en" else "zh-Hans"
        right_article = not case.handoff and figures["article_id"] in case.expect
        score, coverage = figures["score"], figures["coverage"]
        assert isinstance(score, float) and isinstance(coverage, float)  # what explain() puts there
        observed[base].append((score, coverage, bool(case.handoff), right_article))
    best: dict[str, dict[str, float]] = {}
    for lang, rows in observed.items():
        if not rows:
            continue
        top: tuple[float, float, float] | None = None
        for min_score in [x / 2 for x in range(0, 41)]:
            for min_coverage in [x / 20 for x in range(0, 19)]:
                right = sum(
                    (score < min_score or coverage < min_coverage) if should_handoff
                    else (score >= min_score and coverage >= min_coverage and right_article)
                    for score, coverage, should_handoff, right_article in rows
                )
                accuracy = right / len(rows)
                if top is None or accuracy > top[0]:
                    top = (accuracy, min_score, min_coverage)
        assert top is not None
        best[lang] = {"accuracy": round(top[0], 4), "min_score": top[1], "min_coverage": top[2],
                      "questions": len(rows)}
    return best


def eval_qa(
    file: Path = typer.Option(DEFAULT_EVAL_FILE, "--file", help="Evaluation set (YAML)."),
    as_json: bool = typer.Option(False, "--json", help="Print the figures as one JSON object."),
    sweep: bool = typer.Option(False, "--sweep", help="Suggest thresholds from the dev split instead."),
) -> None:
    """Run the evaluation set; exit non-zero below 90% accuracy."""
    from bot.qa import get_qa

    qa = get_qa()
    cases = load_eval_cases(file)
    if sweep:
        suggestion = calibrate(qa, [c for c in cases if c.split == "dev"])
        typer.echo(json.dumps(suggestion, ensure_ascii=False, indent=2))
        return
    overall = run_eval(qa, cases)
    by_split = {name: run_eval(qa, [c for c in cases if c.split == name]).summary() for name in ("dev", "holdout")}
    if as_json:
        typer.echo(json.dumps({**overall.summary(), "splits": by_split, "failure_list": overall.failures},
                              ensure_ascii=False))
    else:
        s = overall.summary()
        typer.echo(f"questions {s['questions']}  accuracy {s['accuracy']:.1%}  "
                   f"handoff precision {s['handoff_precision']:.1%}  recall {s['handoff_recall']:.1%}")
        for name, figures in by_split.items():
            typer.echo(f"  {name:8} {figures['questions']:4} questions  accuracy {figures['accuracy']:.1%}  "
                       f"handoff precision {figures['handoff_precision']:.1%}  "
                       f"recall {figures['handoff_recall']:.1%}")
        for failure in overall.failures:
            typer.echo(f"FAIL [{failure['split']}] {failure['question']}\n     {failure['problem']}")
    if overall.accuracy < PASS_ACCURACY:
        raise typer.Exit(code=1)
