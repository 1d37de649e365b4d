"""What a search leaves in its run folder: ``best.dpc``, ``best.svg``,
``leaderboard.csv`` and a self-contained ``report.html`` (the leaderboard, the graphs of
the top cells as inline SVG, and matplotlib plots: best-so-far mIOU against trials and
against time, and mIOU against multiply-adds with the Pareto front)."""

from __future__ import annotations

import csv
import html
import io
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from dpcdsl._files import load_json
from dpcdsl.errors import DpcError, Span
from dpcdsl.graph import render, to_svg
from dpcdsl.space import Space

COLUMNS = ("rank", "trial", "miou", "params", "madds", "wall_s", "hash", "duplicate_of",
           "cell")


def ranked(study: optuna.Study) -> list[FrozenTrial]:
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.value is not None]
    return sorted(done, key=lambda t: (-float(t.value or 0), t.number))


def write_outputs(study: optuna.Study, run_dir: Path) -> None:
    """best.dpc, best.svg, leaderboard.csv and report.html in ``run_dir``."""
    rows = ranked(study)
    with open(run_dir / "leaderboard.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for rank, t in enumerate(rows, 1):
            a = t.user_attrs
            w.writerow([rank, t.number, f"{t.value:.3f}", a.get("params"), a.get("madds"),
                        f"{a.get('wall_s') or 0:.2f}", a.get("hash"), a.get("duplicate_of", ""),
                        a.get("cell", "")])
    if rows:
        best = rows[0]
        cell = Space.from_text(best.user_attrs["cell"]).concrete()
        header = (f"# The best cell of {len(rows)} finished trials: mIOU {best.value:.2f} "
                  f"(trial {best.number}, {study.user_attrs.get('strategy', '?')} search)\n")
        (run_dir / "best.dpc").write_text(header + best.user_attrs["cell"])
        render(cell, run_dir / "best.svg")
    else:  # no finished trial: no best cell, and none left from an earlier state
        for name in ("best.dpc", "best.svg"):
            (run_dir / name).unlink(missing_ok=True)
    (run_dir / "report.html").write_text(report_html(study, rows, run_dir))


def _plot(fig: Any) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]


def plots(study: optuna.Study, rows: list[FrozenTrial]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = sorted(rows, key=lambda t: t.number)
    if not done:
        return []
    out = []
    start = min(t.datetime_start for t in done if t.datetime_start)  # type: ignore[type-var]
    order = sorted(done, key=lambda t: t.datetime_complete or t.datetime_start)  # type: ignore
    for x_of, label in ((lambda i, t: i + 1, "finished trials"),
                        (lambda i, t: ((t.datetime_complete or start) - start)
                         .total_seconds() / 60, "minutes")):
        xs, best, top = [], [], float("-inf")
        for i, t in enumerate(order):
            top = max(top, float(t.value or 0))
            xs.append(x_of(i, t))
            best.append(top)
        fig, ax = plt.subplots(figsize=(5, 3.2))
        ax.step(xs, best, where="post")
        ax.scatter(xs, [float(t.value or 0) for t in order], s=8, alpha=0.5)
        ax.set_xlabel(label)
        ax.set_ylabel("best mIOU so far")
        ax.grid(alpha=0.3)
        out.append(_plot(fig))
    fig, ax = plt.subplots(figsize=(5, 3.2))
    pts = [(t.user_attrs.get("madds", 0) / 1e9, float(t.value or 0)) for t in done]
    ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=10, alpha=0.6, label="trials")
    front = pareto(pts)
    ax.plot([p[0] for p in front], [p[1] for p in front], "r-o", ms=4, label="Pareto front")
    ax.set_xlabel("multiply-adds (B)")
    ax.set_ylabel("mIOU")
    ax.legend()
    ax.grid(alpha=0.3)
    out.append(_plot(fig))
    return out


def pareto(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other point beats on both cost (lower) and score (higher)."""
    front, best = [], float("-inf")
    for cost, score in sorted(points, key=lambda p: (p[0], -p[1])):
        if score > best:
            front.append((cost, score))
            best = score
    return front


def _rerank_section(run_dir: Path | None) -> list[str]:
    path = None if run_dir is None else run_dir / "rerank.json"
    if path is None or not path.exists():
        return []
    data = load_json(path, "re-ranking record")
    if not isinstance(data, dict) or not {"end_to_end", "rows", "spearman"} <= set(data):
        raise DpcError.at(Span(file=str(path)), "the re-ranking record is damaged: it holds "
                          "no re-ranking", hint=f"remove {path}, or run dpcc rerank again")
    how = "end to end" if data["end_to_end"] else f"on the proxy task for {data['steps']} steps"
    out = [f"<h2>Re-ranking</h2><p>The top {len(data['rows'])} cells trained {how}. "
           f"Spearman rank correlation between proxy and re-ranked mIOU: "
           f"<b>{data['spearman']:.3f}</b>.</p><table><tr><th>trial</th><th>proxy mIOU</th>"
           "<th>re-ranked mIOU</th><th>new rank</th></tr>"]
    order = sorted(data["rows"], key=lambda r: -r["rerank_miou"])
    for r in data["rows"]:
        out.append(f"<tr><td>{r['trial']}</td><td>{r['proxy_miou']:.2f}</td>"
                   f"<td>{r['rerank_miou']:.2f}</td><td>{order.index(r) + 1}</td></tr>")
    out.append("</table>")
    return out


def report_html(study: optuna.Study, rows: list[FrozenTrial],
                run_dir: Path | None = None) -> str:
    e = html.escape
    attrs = study.user_attrs
    trials = study.get_trials(deepcopy=False)
    over = [t for t in trials if "over_budget" in t.user_attrs]
    failed = [t for t in trials if t.state == TrialState.FAIL and t not in over]
    budget = (f" {len(over)} drawn over the multiply-add budget of "
              f"{int(attrs['identity']['max_madds']) / 1e9:.3g}B, not trained."
              if over and "max_madds" in attrs.get("identity", {}) else "")
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>dpcdsl search</title>",
        "<style>body{font-family:Helvetica,Arial,sans-serif;margin:2em;max-width:1100px}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;"
        "vertical-align:top;font-size:13px}pre{margin:0;font-size:12px}"
        ".plots svg,.cells svg{max-width:100%;height:auto}</style></head><body>",
        f"<h1>Search: {e(str(attrs.get('cell', '')))}</h1>",
        f"<p>Space <code>{e(str(attrs.get('space_file', '')))}</code>, task "
        f"<code>{e(str(attrs.get('task_file', '')))}</code>, strategy "
        f"<b>{e(str(attrs.get('strategy', '')))}</b>. {len(rows)} finished trials, "
        f"{len(failed)} failed.{budget}</p>",
        "<h2>Progress</h2><div class='plots'>", *plots(study, rows), "</div>",
        "<h2>Leaderboard</h2><table><tr><th>rank</th><th>trial</th><th>mIOU</th>"
        "<th>params</th><th>MAdds</th><th>cell</th></tr>",
    ]
    for rank, t in enumerate(rows[:50], 1):
        a = t.user_attrs
        dup = f" (= trial {a['duplicate_of']})" if "duplicate_of" in a else ""
        parts.append(f"<tr><td>{rank}</td><td>{t.number}{dup}</td><td>{t.value:.2f}</td>"
                     f"<td>{a.get('params', 0):,}</td><td>{a.get('madds', 0) / 1e9:.2f}B</td>"
                     f"<td><pre>{e(a.get('cell', ''))}</pre></td></tr>")
    parts.append("</table><h2>The top cells</h2><div class='cells'>")
    for rank, t in enumerate(rows[:5], 1):
        try:
            svg = to_svg(Space.from_text(t.user_attrs["cell"]).concrete())
            svg = svg[svg.index("<svg"):]
        except DpcError as err:
            svg = f"<p>{e(err.render())}</p>"
        parts.append(f"<h3>#{rank}: trial {t.number}, mIOU {t.value:.2f}</h3>{svg}")
    parts.append("</div>")
    parts += _rerank_section(run_dir)
    if failed:
        parts.append("<h2>Failed trials</h2><table><tr><th>trial</th><th>reason</th></tr>")
        for t in failed:
            reason = t.user_attrs.get("failure", "interrupted; run again")
            parts.append(f"<tr><td>{t.number}</td><td>{e(str(reason))}</td></tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def rebuild(run_dir: Path, storage: str | None = None) -> Path:
    """``dpcc report``: write the outputs again from the study in ``run_dir``."""
    from dpcdsl.search.study import STUDY, open_storage

    if storage is None and not (run_dir / "study.db").exists():
        raise DpcError.at(None, f"{run_dir} holds no search (no study.db)")
    study = optuna.load_study(study_name=STUDY, storage=open_storage(run_dir, storage))
    write_outputs(study, run_dir)
    return run_dir / "report.html"
