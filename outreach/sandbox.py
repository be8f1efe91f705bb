"""Staff-written text rendered under bounds: Jinja2's sandbox, with its hooks used to refuse
what would take too long or grow too large, and a worker process with a deadline for checks.

Inside the sandbox (`BoundedSandbox`):
- arithmetic is never folded at compile time and is checked before it runs (`call_binop`,
  `call_unop`): `'a' * 10**9`, `9**(9**9)` and huge strings or numbers are refused;
- `range` and `lipsum` are replaced by capped versions; every `for` loop draws on one budget of
  iterations per render; every call, filter and loop step checks the render's deadline;
- calls and filters refuse numeric arguments that would size a result (`center(10**9)`,
  `'{:>99999999}'.format(…)`), and anything that returns a text or list too long;
- the output is collected piece by piece and refused past `Limits.output_chars`.
`check_in_worker` runs one render in a separate process (`python -m outreach.sandbox`, its memory
capped) that the kernel stops once the render has used `worker_seconds` of CPU: whatever the text
does, the answer comes back in time, and a busy machine (a slow start, a render waiting for a
core) does not refuse ordinary text. Every refusal is a `Refused` whose message starts with "refused:".
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import StrictUndefined, nodes
from jinja2.exceptions import SecurityError, TemplateError, TemplateSyntaxError, UndefinedError
from jinja2.sandbox import SandboxedEnvironment
from jinja2.utils import generate_lorem_ipsum


@dataclass(frozen=True)
class Limits:
    source_chars: int = 8_000  # what staff may type
    output_chars: int = 4_096  # one Telegram message; an SMS is refused long before (10 segments)
    range_items: int = 1_000
    loop_iterations: int = 20_000  # over all loops of one render
    number_bits: int = 128  # integers past 10**38 are not part of any message
    argument: int = 4_096  # largest numeric argument to a call or filter (a width, a count)
    seconds: float = 0.5  # one render, checked inside the sandbox
    worker_seconds: float = 3.0  # the worker's hard limit: CPU seconds of the render (process start not counted)
    worker_wait_seconds: float = 120.0  # the most the caller waits in all: a hung or starved worker, never the text
    worker_memory_bytes: int = 1 << 30


LIMITS = Limits()


class Refused(ValueError):
    """Staff text that cannot be used; the message starts with "refused:" and says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"refused: {reason}")
        self.reason = reason


@dataclass
class _Budget:
    deadline: float
    iterations: int
    limits: Limits


_budget: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar("staff_render_budget", default=None)


def _limits() -> Limits:
    """The limits of the render under way (`bounded`), else the defaults."""
    budget = _budget.get()
    return budget.limits if budget is not None else LIMITS


def _tick(cost: int = 0) -> None:
    budget = _budget.get()
    if budget is None:
        return
    if cost:
        budget.iterations -= cost
        if budget.iterations < 0:
            raise Refused(f"the text repeats more than {_limits().loop_iterations:,} times")
    if time.monotonic() > budget.deadline:
        raise Refused(f"the text takes longer than {_limits().seconds:g} s to write out")


@contextlib.contextmanager
def bounded(limits: Limits = LIMITS) -> Iterator[None]:
    """Renders inside this block draw on one deadline and one loop budget."""
    token = _budget.set(_Budget(time.monotonic() + limits.seconds, limits.loop_iterations, limits))
    try:
        yield
    finally:
        _budget.reset(token)


def _size(value: Any) -> int:
    return len(value) if isinstance(value, str | bytes | list | tuple | dict) else 0


def _check_result(value: Any) -> Any:
    if _size(value) > _limits().output_chars:
        raise Refused(f"a piece of the text would be longer than {_limits().output_chars:,} characters")
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > _limits().number_bits:
        raise Refused("a number in the text is far too large")
    return value


def _check_argument(value: Any) -> None:
    if isinstance(value, bool):
        return
    if isinstance(value, int | float) and abs(value) > _limits().argument:
        raise Refused(f"the number {value:g} is too large here (at most {_limits().argument:,})")
    if _size(value) > _limits().output_chars:
        raise Refused(f"a piece of the text would be longer than {_limits().output_chars:,} characters")


_WIDTH = re.compile(r"%[-+ #0]*(\*|\d+)|\{[^{}]*:[^{}]*?(\d+)[^{}]*\}")


def _check_format(text: str) -> None:
    """Widths in printf-style and str.format templates size their results."""
    for match in _WIDTH.finditer(text):
        width = match.group(1) or match.group(2)
        if width == "*" or int(width) > _limits().argument:
            raise Refused("a field width in the text is too large")


def _bits(value: Any) -> int:
    if isinstance(value, bool):
        return 1
    if isinstance(value, int):
        return value.bit_length()
    return 0


def _precheck_binop(operator: str, left: Any, right: Any) -> None:
    numbers = (int, float)
    if operator == "**":
        if isinstance(left, numbers) and isinstance(right, numbers) and (
                abs(right) > _limits().number_bits
                or (abs(left) > 1 and _bits(int(abs(left))) * abs(right) > _limits().number_bits)):
            raise Refused("a power in the text is far too large")
        return
    if operator == "*":
        for seq, count in ((left, right), (right, left)):
            if (_size(seq) and isinstance(count, int) and not isinstance(count, bool)
                    and _size(seq) * count > _limits().output_chars):
                raise Refused(f"a repeated piece would be longer than {_limits().output_chars:,} characters")
        if _bits(left) + _bits(right) > _limits().number_bits:
            raise Refused("a number in the text is far too large")
        return
    if operator == "+" and _size(left) + _size(right) > _limits().output_chars:
        raise Refused(f"a piece of the text would be longer than {_limits().output_chars:,} characters")
    if operator == "%" and isinstance(left, str):
        _check_format(left)


def capped_range(*args: int) -> range:
    """`range` with at most `Limits.range_items` items."""
    _tick()
    for arg in args:
        _check_argument(arg)
    rng = range(*args)
    if len(rng) > _limits().range_items:
        raise Refused(f"range() of more than {_limits().range_items:,} numbers")
    return rng


def capped_lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
    """`lipsum` with at most 5 paragraphs of at most 100 words."""
    _tick()
    if not (0 <= n <= 5 and 0 <= min <= 100 and 0 <= max <= 100):
        raise Refused("lipsum() is limited to 5 paragraphs of 100 words")
    return str(generate_lorem_ipsum(n, html, min, max))


def loop_budget(iterable: Iterable[Any]) -> Iterator[Any]:
    """Every `for` loop of staff text iterates through here: one budget for all of them."""
    for item in iterable:
        _tick(1)
        yield item


def _guard_filter(func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        _tick()
        for value in (*args[1:], *kwargs.values()):
            _check_argument(value)
        if func.__name__ in ("do_format", "format") and args and isinstance(args[0], str):
            _check_format(args[0])
        return _check_result(func(*args, **kwargs))

    return guarded


class BoundedSandbox(SandboxedEnvironment):
    """Jinja2's sandbox with bounds on arithmetic, ranges, loops, calls, filters and time."""

    intercepted_binops = frozenset({"*", "**", "+", "-", "/", "//", "%"})
    intercepted_unops = frozenset({"-", "+"})

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("undefined", StrictUndefined)
        super().__init__(**kwargs)
        self.globals["range"] = capped_range
        self.globals["lipsum"] = capped_lipsum
        self.filters = {name: _guard_filter(f) for name, f in self.filters.items()}
        self.filters["loop_budget"] = loop_budget

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        _tick()
        _precheck_binop(operator, left, right)
        return _check_result(super().call_binop(context, operator, left, right))

    def call_unop(self, context: Any, operator: str, arg: Any) -> Any:
        _tick()
        return _check_result(super().call_unop(context, operator, arg))

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 (Jinja's signature)
        _tick()
        for value in (*args, *kwargs.values()):
            _check_argument(value)
        # The sandbox hands str.format out wrapped; the text it formats is the wrapped method's.
        owner = getattr(getattr(__obj, "__wrapped__", __obj), "__self__", None)
        if getattr(__obj, "__name__", "") in ("format", "format_map") and isinstance(owner, str):
            _check_format(owner)
        return _check_result(super().call(__context, __obj, *args, **kwargs))

    def parse_bounded(self, source: str) -> nodes.Template:
        """Parse staff text, refusing a source past `Limits.source_chars`, with every `for`
        loop drawing on the render's loop budget."""
        if len(source) > _limits().source_chars:
            raise Refused(f"the text is {len(source):,} characters long; at most {_limits().source_chars:,}")
        ast = self.parse(source)
        for loop in ast.find_all(nodes.For):
            loop.iter = nodes.Filter(loop.iter, "loop_budget", [], [], None, None, lineno=loop.lineno)
        return ast


def render_bounded(template: Any, values: Mapping[str, Any], limits: Limits = LIMITS) -> str:
    """Render in this process within the limits; raises Refused (or the template's own error)."""
    with bounded(limits):
        pieces: list[str] = []
        length = 0
        try:
            for piece in template.generate(dict(values)):
                length += len(piece)
                if length > limits.output_chars:
                    raise Refused(f"the message would be longer than {limits.output_chars:,} characters")
                pieces.append(piece)
        except RecursionError:
            raise Refused("the text calls itself without end") from None
        except MemoryError:
            raise Refused("the text needs far too much memory") from None
        return "".join(pieces)


# --- the worker ----------------------------------------------------------------------------

def _describe(exc: BaseException) -> str:
    if isinstance(exc, Refused):
        return str(exc)
    if isinstance(exc, SecurityError):
        return f"refused: not allowed in a message ({exc})"
    if isinstance(exc, UndefinedError):
        return f"refused: {exc}"
    if isinstance(exc, TemplateSyntaxError):
        return f"refused: line {exc.lineno}: {exc.message}"
    if isinstance(exc, TemplateError):
        return f"refused: {exc.message or type(exc).__name__}"
    if isinstance(exc, OverflowError | MemoryError):
        return "refused: a number or text in it is far too large"
    return f"refused: the text cannot be written out ({type(exc).__name__}: {str(exc)[:200]})"


def check(source: str, values: Mapping[str, Any], limits: Limits = LIMITS) -> str:
    """Parse, compile and render once within the limits: the text, or Refused."""
    env = _worker_env()
    try:
        template = env.from_string(env.parse_bounded(source))
        return render_bounded(template, values, limits)
    except Refused:
        raise
    except Exception as exc:
        raise Refused(_describe(exc).removeprefix("refused: ")) from None


_ENV: BoundedSandbox | None = None


def _worker_env() -> BoundedSandbox:
    global _ENV
    if _ENV is None:
        _ENV = BoundedSandbox(autoescape=False, trim_blocks=True, lstrip_blocks=True)
    return _ENV


def _serve_one() -> None:
    """The worker's side (`python -m outreach.sandbox`): one JSON request on stdin, one answer
    on stdout, memory capped first."""
    import resource
    import signal
    import sys

    request = json.loads(sys.stdin.read())
    limits = Limits(**request["limits"])
    with contextlib.suppress(ValueError, OSError):  # not every system lets a process cap its memory
        resource.setrlimit(resource.RLIMIT_AS, (limits.worker_memory_bytes, limits.worker_memory_bytes))
    # Counted in CPU time from here (imports done): SIGPROF's default action ends the process, even
    # inside a C loop, and time spent waiting for a core on a busy machine is not counted.
    signal.setitimer(signal.ITIMER_PROF, limits.worker_seconds)
    try:
        answer = {"ok": check(request["source"], request["values"], limits)}
    except Refused as exc:
        answer = {"refused": exc.reason}
    except BaseException as exc:  # the worker answers whatever happened
        answer = {"refused": _describe(exc).removeprefix("refused: ")}
    sys.stdout.write(json.dumps(answer, ensure_ascii=False))


def check_in_worker(source: str, values: Mapping[str, Any], limits: Limits = LIMITS) -> str:
    """`check` in a separate process, stopped after `limits.worker_seconds` of CPU: the rendered text,
    or Refused (a text that hangs, or needs gigabytes, is refused in time)."""
    if len(source) > limits.source_chars:  # not worth a process
        raise Refused(f"the text is {len(source):,} characters long; at most {limits.source_chars:,}")
    request = json.dumps({"source": source, "values": {k: str(v) for k, v in values.items()},
                          "limits": dataclasses.asdict(limits)}, ensure_ascii=False)
    try:
        done = subprocess.run([sys.executable, "-m", "outreach.sandbox"], input=request, capture_output=True,
                              text=True, encoding="utf-8", timeout=limits.worker_wait_seconds, check=False)
    except subprocess.TimeoutExpired:  # run() has killed it
        raise Refused(f"the text takes longer than {limits.worker_seconds:g} s to write out") from None
    if done.returncode == -signal.SIGPROF:  # its CPU time ran out
        raise Refused(f"the text takes longer than {limits.worker_seconds:g} s to write out")
    try:
        answer = json.loads(done.stdout)
    except ValueError:  # the worker died without an answer: out of memory
        raise Refused("the text needs far too much memory") from None
    if "ok" not in answer:
        raise Refused(str(answer.get("refused", "the text cannot be written out")))
    return str(answer["ok"])


if __name__ == "__main__":
    _serve_one()
