"""The fuzz harness of the language core.

Generates inputs (random spaces built from the op registry, mutations of them and of
the examples, and hostile texts: odd line separators, markup, huge numbers, deep
nesting, large repeats and sets) and runs each through parse, format, check, count,
sample, decode and encode in a worker process, under a time and a memory limit per
input. Counts, by kind, every failure the project promises never to have:

- ``crash``: an exception other than the project's ``DpcError``;
- ``over_time`` / ``over_memory``: an input that ran past the limits;
- ``caret``: a diagnostic whose line or column is not in the text, or whose echoed
  line is not the line the parser counted;
- ``format_round_trip``: ``format`` output that does not parse back to the same IR, or
  is not a fixed point;
- ``sample_round_trip``: a sampled cell whose text does not parse back to the same
  cell, or whose decisions do not decode and encode back to it;
- ``unlocated``: a diagnostic about the text that names no line;
- ``late_error``: a ``DpcError`` from count, sample, decode or encode of a program that
  ``check`` passed (``check`` must find everything);
- ``count``: a small space (up to 64) whose count is not its number of distinct
  architectures (two decisions that make one architecture), unless ``check`` warned of
  the one documented case (DPC307: a choice among names that an architecture may not
  read), which is counted apart as ``count_warned``.

Inputs: random spaces from the op registry, derivations of the grammar itself, semantic
mutations (colliding names, aliases, repeated set values, extreme numbers, grown repeats
and depths, keywords as names, a byte-order mark), character mutations of both and of
the examples, and hostile texts.

Writes ``benchmarks/results/fuzz_dsl.json`` with the machine described:

    python benchmarks/fuzz_dsl.py [--inputs 100000] [--time-limit 2] [--memory-mb 500]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import resource
import signal
import sys
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, machine, write_result  # noqa: E402

FAILURES = ("crash", "over_time", "over_memory", "caret", "unlocated", "format_round_trip",
            "sample_round_trip", "late_error", "count")
EXAMPLES = sorted((ROOT / "examples").rglob("*.dpc"))
FILE = "fuzz.dpc"


# --------------------------------------------------------------------------- inputs
def _value(rng: random.Random, kind: str, words: tuple[str, ...], name: str) -> str:
    def small() -> str:
        return str(rng.choice([1, 1, 2, 3, 5, 6, 12]))

    def some() -> str:
        vals = sorted(rng.sample([1, 2, 3, 4, 6, 8, 12, 16, 24], rng.randint(1, 3)))
        return "{" + ", ".join(map(str, vals)) + "}"

    if name == "kernel":
        return rng.choice(["1", "3", "{1, 3}", "5"])
    if kind == "int":
        return rng.choice([small, small, some])()
    if kind == "pair":
        return rng.choice([small, lambda: f"({small()}, {small()})",
                           lambda: f"({some()}, {some()})", some])()
    if kind == "float":
        return rng.choice(["0.1", "0.5", "{0.1, 0.2}", "0.0"])
    if kind == "bool":
        return rng.choice(["true", "false", "{true, false}"])
    if kind == "word":
        return rng.choice(words)
    return small()


def _op_call(rng: random.Random, tensor: str | None) -> str:
    """A call of a random single-input op of the registry, with random arguments."""
    from dpcdsl.ops import OPS

    simple = [s for s in OPS.values() if s.min_inputs == 1 and s.max_inputs == 1
              and not s.tensor_args]
    spec = rng.choice(simple)
    args = [tensor] if tensor is not None else []
    value_args = [a for a in spec.value_args if a.name not in ("crop", "window", "step")]
    for a in rng.sample(value_args, min(len(value_args), rng.randint(0, 2))):
        args.append(f"{a.name} = {_value(rng, a.kind, a.words, a.name)}")
    return f"{spec.name}({', '.join(args)})"


def _tensor(rng: random.Random, names: list[str], depth: int = 0) -> str:
    r = rng.random()
    if depth > 2 or r < 0.3:
        return rng.choice(names)
    if r < 0.6:
        return _op_call(rng, _tensor(rng, names, depth + 1))
    if r < 0.75:
        k = rng.randint(2, 3)
        op = rng.choice(["concat", "sum"])
        return f"{op}({', '.join(_tensor(rng, names, depth + 1) for _ in range(k))})"
    if r < 0.9:
        ops = ", ".join(_op_call(rng, None) for _ in range(rng.randint(1, 3)))
        return f"one_of({ops})({_tensor(rng, names, depth + 1)})"
    return f"one_of({', '.join(_tensor(rng, names, depth + 1) for _ in range(2))})"


def random_space(rng: random.Random) -> str:
    """A random program: lets, maybe a helper cell (maybe recursive), and a main cell
    with assignments, maybe a repeat over `earlier`, and a return."""
    lines = []
    if rng.random() < 0.5:
        lines.append(f"let rates = {{{', '.join(map(str, sorted(rng.sample(range(1, 25), 3))))}}}")
    helper = None
    r = rng.random()
    if r < 0.25:
        helper = "h"
        lines.append(f"cell h(x, k = {rng.choice(['1', '3'])}) {{\n"
                     f"  return one_of(sepconv(x, kernel = k), conv(x, kernel = 1))\n}}")
    elif r < 0.45:
        helper = "t"
        depth = rng.randint(0, 4)
        lines.append(f"cell t(x) depth {depth} {{\n  return one_of({_op_call(rng, 'x')}, "
                     f"t(t(x)), sum(t(x), {_op_call(rng, 'x')}))\n}}")
    channels = rng.choice([4, 8, 16])
    body = []
    names = ["x"]
    for i in range(rng.randint(0, 3)):
        expr = _tensor(rng, names)
        if helper is not None and rng.random() < 0.4:
            call_kw = f", k = {rng.choice(['1', '3', '{1, 3}'])}" if helper == "h" else ""
            expr = f"{helper}({expr}{call_kw})"
        body.append(f"  a{i} = {expr}")
        names.append(f"a{i}")
    tail = names[-1]
    if rng.random() < 0.5:
        n = rng.randint(1, 4)
        ops = ", ".join(_op_call(rng, None) for _ in range(rng.randint(1, 3)))
        body.append(f"  repeat {n} as b {{\n    b = one_of({ops})(one_of({rng.choice(names)}, "
                    f"earlier))\n  }}")
        tail = "concat(b)"
    body.append(f"  return {tail}")
    lines.append(f"cell m(x, channels = {channels}) {{\n" + "\n".join(body) + "\n}")
    return "\n\n".join(lines) + "\n"


PIECES = list("(){}=,#\"\n @.") + ["one_of", "earlier", "repeat", "cell", "let", "0", "x",
                                    "depth", "1e999", "99999999999", "\r", "\x0b", "\x0c",
                                    "\x1c", "\x85", "\u2028", "\t", ":smile:", "[bold]", "{1, 2}"]


def mutate(rng: random.Random, text: str) -> str:
    chars = list(text)
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(chars) + 1)
        op = rng.random()
        if op < 0.4 and chars:
            del chars[min(i, len(chars) - 1)]
        elif op < 0.8:
            chars.insert(i, rng.choice(PIECES))
        else:
            j = rng.randrange(len(chars) + 1)
            chars[i:j] = chars[j:i]
    return "".join(chars)


def hostile(rng: random.Random) -> str:
    """Short texts aimed at the limits: deep nesting, big numbers, repeats and sets."""
    n = rng.choice([10, 70, 300, 3000])
    return rng.choice([
        lambda: "let r = " + "(" * n + "1" + ")" * n + "\n",
        lambda: "cell a(x) { return " + "relu(" * n + "x" + ")" * n + " }\n",
        lambda: "let r = " + "{" * n + "1" + "}" * n + "\n",
        lambda: f"let r = {'9' * n}\n",
        lambda: f"cell a(x) {{ repeat {10 ** rng.randint(1, 9)} as b {{ b = one_of(x, "
                "earlier) }\n return concat(b) }\n",
        lambda: "let r = {" + ", ".join(map(str, range(1, min(n, 2500)))) + "}\n"
                "cell a(x) { return sepconv(x, rate = (r, r)) }\n",
        lambda: f"cell t(x) depth {rng.choice([8, 20, 40, 200])} {{ return one_of(relu(x), "
                "sum(t(x), t(x))) }\n",
        lambda: "".join(f"cell c{i}(x) {{ return c{i - 1}(sum(x, x)) }}\n" if i else
                        "cell c0(x) { return relu(x) }\n" for i in range(min(n, 300))),
        lambda: f"cell a(x) {{{rng.choice(PIECES[-10:])}  y = conv(x){rng.choice(PIECES[-10:])}"
                "  return z\n}\n",
        lambda: "# :x: :smile: [bold]hi[/bold]\ncell a(x) { return zz }\n",
    ])()


_GRAMMAR: dict[str, Any] = {}


def _grammar() -> dict[str, Any]:
    """The grammar's rules (origin -> expansions) and terminals, from the parser that
    the language itself uses, and each rule's least derivation depth."""
    if not _GRAMMAR:
        from lark.grammar import NonTerminal

        from dpcdsl.lang.syntax import _parser

        lark = _parser()
        rules: dict[str, list[tuple[Any, ...]]] = {}
        for r in lark.rules:
            rules.setdefault(r.origin.name, []).append(tuple(r.expansion))
        depth = {name: 10**6 for name in rules}
        for _ in range(len(rules)):
            for name, expansions in rules.items():
                depth[name] = min(depth[name], min(
                    1 + max([depth[s.name] for s in e if isinstance(s, NonTerminal)],
                            default=0) for e in expansions))
        patterns = {t.name: t.pattern for t in lark.terminals}
        _GRAMMAR.update(rules=rules, depth=depth, patterns=patterns, nonterminal=NonTerminal)
    return _GRAMMAR


def _terminal(rng: random.Random, name: str, pattern: Any) -> str:
    from dpcdsl.ops import OPS

    if type(pattern).__name__ == "PatternStr":
        return str(pattern.value)
    if name == "NAME":
        return rng.choice([*rng.sample(sorted(OPS), 3), "x", "x", "y", "a", "b", "channels",
                           "kernel", "rate", "rates", "h", "t", "import", "cell", "depth",
                           "one_of", "earlier", "grid", "p", "_"])
    if name == "INT":
        return rng.choice(["0", "1", "1", "2", "3", "4", "6", "12", "16", "1000",
                           "2147483647", "99999999999"])
    if name == "FLOAT":
        return rng.choice(["0.5", "0.1", "1.0", "1e3", "2.", "1e999"])
    if name == "STRING":
        return rng.choice(['"a.dpc"', '"x.toml"', '""', '"../b.dpc"', '"/proc/self/environ"'])
    return " "


def grammar_text(rng: random.Random, budget: int = 9) -> str:
    """A random derivation of the grammar itself (``grammar/dpc.lark``): every text is
    syntactically valid, so it reaches the checks behind the parser. Past ``budget``
    levels each rule takes its shallowest expansion."""
    g = _grammar()
    out: list[str] = []

    def derive(name: str, level: int) -> None:
        expansions = g["rules"][name]
        if level >= budget:  # the shallowest expansion, so that the text ends
            expansions = [min(expansions, key=lambda e: max(
                [g["depth"][s.name] for s in e if isinstance(s, g["nonterminal"])],
                default=0))]
        for sym in rng.choice(expansions):
            if isinstance(sym, g["nonterminal"]):
                derive(sym.name, level + 1)
            else:
                out.append(_terminal(rng, sym.name, g["patterns"][sym.name]))

    derive("start", 0)
    return " ".join(out) + "\n"


def _replace_one(rng: random.Random, text: str, pattern: str, new: Any) -> str:
    import re

    found = list(re.finditer(pattern, text))
    if not found:
        return text
    m = rng.choice(found)
    return text[:m.start()] + (new(m) if callable(new) else new) + text[m.end():]


def semantic(rng: random.Random, text: str) -> str:
    """A mutation that keeps the text well formed but changes its meaning: names that
    collide, aliases, repeated set values, extreme numbers, grown repeats and depths,
    keywords as names, a byte-order mark."""
    import re

    cells = re.findall(r"cell (\w+)", text)
    nodes = re.findall(r"^\s*(\w+) = ", text, re.M)
    mutation = rng.randrange(10)
    if mutation == 0 and cells:  # a let and a cell of one name
        return f"let {rng.choice(cells)} = 3\n" + text if rng.random() < 0.5 else \
            text + f"\nlet {rng.choice(cells)} = 3\n"
    if mutation == 1:  # an alias, then a choice between it and what it names
        return _replace_one(rng, text, r"return (\w+)\n",
                            lambda m: f"alias = {m.group(1)}\n  return one_of(alias, "
                                      f"{m.group(1)})\n")
    if mutation == 2:  # a set that repeats a value
        return _replace_one(rng, text, r"\{(\d+)", lambda m: f"{{{m.group(1)}, {m.group(1)}")
    if mutation == 3:  # an extreme number
        return _replace_one(rng, text, r"\b\d+\b", lambda m: rng.choice(
            ["0", "1", "65537", "100000", "2147483647", "1000"]))
    if mutation == 4:  # a repeat grown to the limit
        return _replace_one(rng, text, r"repeat \d+", f"repeat {rng.choice([50, 300, 1000])}")
    if mutation == 5:  # a depth bound changed
        return _replace_one(rng, text, r"depth \d+", f"depth {rng.choice([0, 1, 13, 20, 32])}")
    if mutation == 6 and nodes:  # a keyword or an op's name as a node name
        old = rng.choice(nodes)
        new = rng.choice(["import", "cell", "let", "repeat", "one_of", "earlier", "true",
                          "conv", "channels", "x"])
        return re.sub(rf"\b{old}\b", new, text)
    if mutation == 7:  # a byte-order mark
        return "\ufeff" + text
    if mutation == 8 and len(cells) > 1:  # a cell called in place of another
        a, b = rng.sample(cells, 2)
        return _replace_one(rng, text, rf"\b{a}\(", f"{b}(")
    # a parameter default changed to a value its uses may refuse
    return _replace_one(rng, text, r"(\w+) = (\d+|\{[^}]*\})([,)])",
                        lambda m: f"{m.group(1)} = {rng.choice(['0', '2', '{0, 1}', '4'])}"
                                  f"{m.group(3)}")


def make_input(seed: int) -> str:
    rng = random.Random(seed)
    r = rng.random()
    if r < 0.3:
        return random_space(rng)
    if r < 0.45:
        return mutate(rng, random_space(rng))
    if r < 0.6:
        return mutate(rng, rng.choice(EXAMPLES).read_text())
    if r < 0.75:
        return grammar_text(rng, rng.choice([4, 6, 9]))
    if r < 0.95:
        return semantic(rng, random_space(rng) if rng.random() < 0.6
                        else rng.choice(EXAMPLES).read_text())
    return hostile(rng)


# --------------------------------------------------------------------------- checks
class _OverTime(BaseException):
    """Raised by the per-input timer; a BaseException, so no `except Exception` in the
    code under test can swallow it."""


def _caret_problem(diag: Any, sources: dict[str, str]) -> str | None:
    from dpcdsl.errors import display_line, shown_window, source_lines

    s = diag.span
    text = sources.get(s.file)
    if text is None or s.line == 0:
        return None
    lines = source_lines(text)
    if not 1 <= s.line <= len(lines):
        return f"line {s.line} of {len(lines)}"
    line = lines[s.line - 1]
    if not 1 <= s.column <= len(line) + 1:
        return f"column {s.column} of a line of {len(line)}"
    rendered = diag.render(sources).split("\n")
    shown, column, _ = shown_window(display_line(line), s.column, 1)
    if len(rendered) < 3 or rendered[1] != "  " + shown:
        return "the echoed line is not the line of the diagnostic"
    if rendered[2].index("^") != 2 + column - 1:
        return "the caret is not under the column"
    return None


def _carets(error: Any) -> str | None:
    for d in error.diagnostics:
        if d.span.line == 0:
            return "unlocated"
        problem = _caret_problem(d, error.sources)
        if problem:
            return problem
    return None


def _refused(problem: str | None, error: Any, phase: str) -> tuple[str, str, None]:
    if problem is None:
        return "refused", phase, None
    if problem == "unlocated":
        d = error.diagnostics[0]
        return "unlocated", f"[{d.code}] {d.message}", None
    return "caret", problem, None


def run_one(text: str, samples: int = 3) -> tuple[str, str, str | None]:
    """(outcome, detail, concrete cell text or None): outcome is ``ok``, ``refused``
    (a located DpcError, as promised), ``invalid_architecture`` (a space that holds
    an architecture whose channels or sizes do not fit, refused when its text is
    checked) or one of :data:`FAILURES`."""
    from dpcdsl.errors import DpcError
    from dpcdsl.lang.checker import check
    from dpcdsl.lang.printer import format_module
    from dpcdsl.lang.program import load_text
    from dpcdsl.lang.space import Space
    from dpcdsl.lang.syntax import parse

    try:
        module = parse(text, FILE)
    except DpcError as e:
        problem = _carets(e)
        return _refused(problem, e, "parse")
    formatted = format_module(module)
    try:
        again = parse(formatted, FILE)
    except DpcError as e:
        return "format_round_trip", f"does not re-parse: {e.diagnostics[0].message}", None
    if again != module or format_module(again) != formatted:
        return "format_round_trip", "re-parses to another module", None
    try:
        program = load_text(text, FILE, base=Path("/nonexistent-fuzz-base"), search_path=[])
    except DpcError as e:  # pragma: no cover - parse passed above
        return "crash", f"load after parse: {e}", None
    found = check(program)
    diags = [d for d in found if d.severity == "error"]
    warned = {d.code for d in found if d.severity == "warning"}
    if diags:
        from dpcdsl.errors import DpcError as E

        problem = _carets(E(diags, program.sources))
        return _refused(problem, E(diags, program.sources), "check")
    concrete = None
    for name in list(program.module.cells)[-2:]:
        try:
            space = Space(program, name)
            n = space.count()
            if 1 < n <= 64:
                distinct = len({c.canonical_text() for c in space.enumerate()})
                if distinct != n and "DPC307" not in warned:
                    return "count", f"count {n}, {distinct} distinct architectures", None
                if distinct != n:  # the documented case, which check warns of
                    return "count_warned", f"count {n}, {distinct} distinct", None
            for k in range(samples if n > 1 else 1):
                cell, decisions = space.sample(k)
                if n == 1:
                    concrete = cell.canonical_text()
                try:
                    back = Space.from_text(cell.canonical_text()).concrete()
                except DpcError as e:
                    if all(d.code in ("DPC601", "DPC150") for d in e.diagnostics):
                        # an architecture whose channels or sizes do not fit, or over a
                        # limit: the space holds it, and check warns of it for spaces
                        return "invalid_architecture", e.diagnostics[0].message, None
                    return ("sample_round_trip",
                            f"sample text refused: {e.diagnostics[0].message}", None)
                if back != cell:
                    return "sample_round_trip", "sample text parses to another cell", None
                if space.decode(decisions) != cell:
                    return "sample_round_trip", "decisions decode to another cell", None
                if space.decode(space.encode(cell)) != cell:
                    return "sample_round_trip", "encode/decode gives another cell", None
        except DpcError as e:
            return "late_error", f"[{e.diagnostics[0].code}] {e.diagnostics[0].message}", None
    return "ok", "", concrete


def _init_worker(memory_mb: int) -> None:
    import dpcdsl.lang.checker  # noqa: F401  (import before the limit counts memory)
    import dpcdsl.lang.space  # noqa: F401

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with open("/proc/self/statm") as f:
        vm = int(f.read().split()[0]) * resource.getpagesize()
    limit = vm + memory_mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _alarm(signum: int, frame: Any) -> None:
    raise _OverTime()


def _job(args: tuple[int, float]) -> tuple[int, str, str, float, str | None]:
    seed, time_limit = args
    text = make_input(seed)
    signal.signal(signal.SIGALRM, _alarm)
    start = time.perf_counter()
    signal.setitimer(signal.ITIMER_REAL, time_limit)
    try:
        outcome, detail, concrete = run_one(text)
    except _OverTime:
        outcome, detail, concrete = "over_time", f"over {time_limit} s", None
    except MemoryError:
        outcome, detail, concrete = "over_memory", "MemoryError", None
    except Exception as e:  # noqa: BLE001 - the harness reports every crash
        frames = traceback.extract_tb(e.__traceback__)
        tb = next((f for f in reversed(frames) if "dpcdsl" in f.filename), frames[-1])
        outcome, detail, concrete = "crash", f"{type(e).__name__}: {e} " \
            f"({Path(tb.filename).name}:{tb.lineno})", None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    return seed, outcome, detail[:300], time.perf_counter() - start, concrete


def fuzz(inputs: int, seed: int = 0, time_limit: float = 2.0, memory_mb: int = 500,
         workers: int | None = None, keep_concrete: int = 0,
         progress: bool = False) -> dict[str, Any]:
    """Run ``inputs`` inputs; the figures, the first examples of each failure, and up to
    ``keep_concrete`` accepted texts that are one architecture."""
    workers = workers or os.cpu_count() or 1
    outcomes: Counter[str] = Counter()
    examples: dict[str, list[dict[str, Any]]] = {}
    concrete: list[str] = []
    slowest = 0.0
    start = time.perf_counter()
    # fresh worker processes: a fork of a process that has imported JAX (a test run)
    # would copy its threads
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(workers, _init_worker, (memory_mb,), maxtasksperchild=2000) as pool:
        jobs = ((seed * 10_000_019 + i, time_limit) for i in range(inputs))
        for k, (s, outcome, detail, elapsed, text) in enumerate(
                pool.imap_unordered(_job, jobs, chunksize=64)):
            outcomes[outcome] += 1
            slowest = max(slowest, elapsed)
            if outcome in FAILURES and len(examples.setdefault(outcome, [])) < 5:
                examples[outcome].append({"seed": s, "detail": detail,
                                          "text": make_input(s)[:2000]})
            if text is not None and len(concrete) < keep_concrete:
                concrete.append(text)
            if progress and (k + 1) % 10_000 == 0:
                print(f"{k + 1:,} inputs, {dict(outcomes)}", file=sys.stderr, flush=True)
    return {"inputs": inputs, "seed": seed, "time_limit_s": time_limit,
            "memory_limit_mb": memory_mb, "workers": workers,
            "wall_s": round(time.perf_counter() - start, 1),
            "slowest_input_s": round(slowest, 3),
            "outcomes": dict(outcomes),
            "failures": {f: outcomes.get(f, 0) for f in FAILURES},
            "examples": examples, "concrete": concrete}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--time-limit", type=float, default=2.0)
    parser.add_argument("--memory-mb", type=int, default=500)
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()
    result = fuzz(args.inputs, args.seed, args.time_limit, args.memory_mb, args.workers,
                  progress=True)
    result.pop("concrete")
    out = write_result("fuzz_dsl", {"machine": machine(), **result})
    print(json.dumps(result["failures"]), f"in {result['wall_s']} s; wrote {out}")
    if any(result["failures"].values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
