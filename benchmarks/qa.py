"""Q&A benchmark: answer latency over the evaluation set, and cold start in a fresh process.

`run()` returns {"p50_ms", "p99_ms", "cpu_p50_ms", "cpu_p99_ms", "repeat_p50_ms", "repeat_p99_ms",
"model_pass_p50_ms", "model_passes_per_question", "cold_start_s", "rss_mb", "model_rss_mb",
"questions", "accuracy", ...}. `p50_ms`/`p99_ms` (and `cpu_*`) time questions the process has not
seen before: the question vectors the embedder keeps are dropped before every round, so the
figures describe the method, not the cache. `repeat_*` time the same questions asked again
(what a question asked before costs). The `cpu_*` figures are the answering thread's own CPU time
per question: on a shared machine they say what a question costs when wall-clock time also counts
the waits for a core. `model_pass_p50_ms` is one pass of the embedding model over a question
(CPU time), `model_passes_per_question` how many passes a first-seen question costs on average,
`model_passes_p99` at the 99th percentile; `model_cpu_share` the part of the answering CPU time
spent in the model, `model_tokens_p50`/`model_tokens_p99` the tokens a first-seen question feeds
the model in all (what a pass costs follows), `other_cpu_p50_ms`/`other_cpu_p99_ms` the CPU a first-seen question costs
outside the model (language, rules, BM25, the answerability check, the reply).
`multi_pass_share` is the share of first-seen questions that cost the model two passes or more
(two-part questions whose parts need their own look): the p99 figures are theirs.
`model_cpu_per_call_ms` and `model_cpu_per_token_ms` split one pass's CPU into what every call
costs and what each token adds (a least-squares line through the single passes timed for
`model_pass_*`): with them, `model_floor_p99_ms` is what the p99 count of passes and of tokens
cost in the model alone on this machine, the least its answer can cost with this engine.
The accuracy figures are those of the last timed round's answers (an answer never depends on
the vectors kept, so answering every question once more would give the same ones).
`rss_mb` is the resident memory of this process with everything loaded (the knowledge, both
indexes and the embedding model); `model_rss_mb` what loading the model and the index added.
Cold start is measured in a new interpreter (imports, loading and indexing the knowledge
base, and answering one question), since that is what a restarted bot pays.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.qa import Answer
    from bot.qa_embed import Embedder

ROOT = Path(__file__).resolve().parent.parent
ROUNDS = 5  # the evaluation set is answered this many times for the latency figures

_COLD_START = """
import json, time
start = time.perf_counter()
from bot.qa import QA
qa = QA.load()
qa.answer("社保补缴的钱怎么交")
print(json.dumps({"cold_start_s": time.perf_counter() - start}))
"""


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def cold_start_seconds() -> float:
    """Seconds from a new interpreter's first import to its first answer (best of 3 runs)."""
    timings = []
    for _ in range(3):
        wall = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", _COLD_START], cwd=ROOT, capture_output=True, text=True,
                             check=True, timeout=60)
        inner = json.loads(out.stdout.strip().splitlines()[-1])["cold_start_s"]
        timings.append(min(inner, time.perf_counter() - wall))
    return min(timings)


def _rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _model_pass_ms(embedder: Embedder, questions: list[str]) -> tuple[list[float], list[int]]:
    """CPU milliseconds of one pass of the model over each question's text, alone, and the
    tokens each pass fed the model."""
    timings, tokens = [], []
    for question in questions:
        embedder.forget_questions()
        tokens_before = embedder.pass_tokens
        cpu_start = time.thread_time()
        embedder.query(question)
        timings.append((time.thread_time() - cpu_start) * 1000)
        tokens.append(embedder.pass_tokens - tokens_before)
    return timings, tokens


def _per_call_and_token(timings: list[float], tokens: list[int]) -> tuple[float, float]:
    """(ms every call costs, ms each token adds): the least-squares line of CPU over tokens."""
    if len(set(tokens)) < 2:
        return (statistics.median(timings) if timings else 0.0), 0.0
    slope, intercept = statistics.linear_regression([float(t) for t in tokens], timings)
    return intercept, slope


def _model_counts(embedder: Embedder | None) -> tuple[int, int, float]:
    """(passes, tokens fed, CPU seconds) of the model over questions so far."""
    if embedder is None:
        return 0, 0, 0.0
    return embedder.passes, embedder.pass_tokens, embedder.pass_cpu_s


def run() -> dict[str, float | int]:
    sys.path.insert(0, str(ROOT))
    from bot.qa import QA
    from bot.qa_commands import development_files, load_eval_cases, run_eval

    before = _rss_mb()
    qa = QA.load()
    cases = [c for path in development_files() for c in load_eval_cases(path)]
    questions = [c.question for c in cases]
    for question in questions[:20]:  # warm caches so the figures describe a running bot
        qa.answer(question)
    embedder = qa.embedder
    latencies_ms, cpu_ms, repeat_ms, other_ms = [], [], [], []
    answers: list[Answer] = []
    passes_each: list[float] = []
    tokens_each: list[float] = []
    passes_before = embedder.passes if embedder is not None else 0
    for _ in range(ROUNDS):
        if embedder is not None:
            embedder.forget_questions()
        answers.clear()
        for question in questions:
            model_before = _model_counts(embedder)
            start, cpu_start = time.perf_counter(), time.thread_time()
            answers.append(qa.answer(question))
            latencies_ms.append((time.perf_counter() - start) * 1000)
            cpu_ms.append((time.thread_time() - cpu_start) * 1000)
            model_after = _model_counts(embedder)
            passes_each.append(model_after[0] - model_before[0])
            tokens_each.append(model_after[1] - model_before[1])
            other_ms.append(cpu_ms[-1] - (model_after[2] - model_before[2]) * 1000)
    passes = (embedder.passes - passes_before) if embedder is not None else 0
    for question in questions:  # every vector is kept now: each question asked again
        start = time.perf_counter()
        qa.answer(question)
        repeat_ms.append((time.perf_counter() - start) * 1000)
    rss = _rss_mb()
    model_ms, model_tokens = _model_pass_ms(embedder, questions) if embedder is not None else ([0.0], [0])
    per_call_ms, per_token_ms = _per_call_and_token(model_ms, model_tokens)
    passes_p99, tokens_p99 = _percentile(passes_each, 0.99), _percentile(tokens_each, 0.99)
    result = run_eval(qa, cases, answers=answers)
    return {
        "rss_mb": round(rss, 1),
        "model_rss_mb": round(rss - before, 1),
        "wrong_answer_rate": round(result.wrong_answer_rate, 4),
        "p50_ms": round(statistics.median(latencies_ms), 3),
        "p99_ms": round(_percentile(latencies_ms, 0.99), 3),
        "max_ms": round(max(latencies_ms), 3),
        "cpu_p50_ms": round(statistics.median(cpu_ms), 3),
        "cpu_p99_ms": round(_percentile(cpu_ms, 0.99), 3),
        "repeat_p50_ms": round(statistics.median(repeat_ms), 3),
        "repeat_p99_ms": round(_percentile(repeat_ms, 0.99), 3),
        "model_pass_p50_ms": round(statistics.median(model_ms), 3),
        "model_pass_p99_ms": round(_percentile(model_ms, 0.99), 3),
        "model_passes_per_question": round(passes / max(1, len(latencies_ms)), 3),
        "model_passes_p99": passes_p99,
        "multi_pass_share": round(sum(p >= 2 for p in passes_each) / max(1, len(passes_each)), 4),
        "model_tokens_p50": statistics.median(tokens_each),
        "model_tokens_p99": tokens_p99,
        "model_cpu_per_call_ms": round(per_call_ms, 3),
        "model_cpu_per_token_ms": round(per_token_ms, 3),
        "model_floor_p99_ms": round(passes_p99 * per_call_ms + tokens_p99 * per_token_ms, 3),
        "model_cpu_share": round(1 - sum(other_ms) / max(1e-9, sum(cpu_ms)), 3),
        "other_cpu_p50_ms": round(statistics.median(other_ms), 3),
        "other_cpu_p99_ms": round(_percentile(other_ms, 0.99), 3),
        "cold_start_s": round(cold_start_seconds(), 3),
        "questions": len(questions),
        "answers_timed": len(latencies_ms),
        "accuracy": round(result.accuracy, 4),
    }


if __name__ == "__main__":
    print(json.dumps(run()))
