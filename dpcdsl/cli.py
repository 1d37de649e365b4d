"""``dpcc``: the command-line front end. Errors go to stderr with exit code 1, as
``file:line:col: error: message`` plus a caret; never as a Python traceback."""

from __future__ import annotations

import inspect
import json
import sys
from collections import Counter
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from dpcdsl.cli_common import (
    CellOpt,
    DeviceOpt,
    FileArg,
    Fmt,
    Format,
    ImageOpt,
    InChannelsOpt,
    OutputStrideOpt,
    ParamOpt,
    Pooling,
    QuietOpt,
    SeedOpt,
    SizeOpt,
    TaskOpt,
    ThreadsOpt,
    _concrete,
    _fail,
    _for_task,
    _head_or_file,
    _in_channels,
    _int,
    _per_input,
    _progress,
    _runtime,
    _sizes,
    _space,
    err,
    handled,
    out,
    parse_count,
    parse_duration,
    parse_size,
)
from dpcdsl.cli_oneshot import app as supernet_app
from dpcdsl.errors import DpcError
from dpcdsl.lang.analysis import cost as cost_of
from dpcdsl.lang.checker import ImageSize, PerInput, SizeSpec, check_file, load
from dpcdsl.lang.space import Space

app = typer.Typer(name="dpcc",
                  help="dpcdsl: write, check, compile, train and search multi-scale "
                       "dense-prediction heads (.dpc).",
                  no_args_is_help=True, add_completion=True, pretty_exceptions_enable=False)

def _version(value: bool) -> None:
    if value:
        from dpcdsl import __version__

        out.print(f"dpcc (dpcdsl) {__version__}")
        raise typer.Exit()


@app.callback()
def _options(version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True,
        help="print the version and exit")] = False) -> None:
    """dpcdsl: write, check, compile, train and search multi-scale dense-prediction heads
    (.dpc)."""



@app.command()
@handled
def check(files: Annotated[list[Path], typer.Argument(
              help=".dpc files (or names of library heads)", metavar="FILE",
              callback=_head_or_file)],
          size: Annotated[list[str] | None, typer.Option(
              help="feature size HxW of every input, or NAME=HxW per input, to check "
                   "pool grids and sizes against")] = None,
          image: Annotated[str | None, typer.Option(
              help="the image's size HxW: each input's follows from its declared stride "
                   "(ceil(H / stride))")] = None,
          format: Fmt = Format.text) -> None:
    """Report every problem in FILES as file:line:col with a caret; exit 1 on an error
    (warnings alone exit 0)."""
    if size and image:
        raise typer.BadParameter("give --size or --image, not both")
    found: list[Any] = []
    for f in files:
        diags = check_file(f, ImageSize(parse_size(image)) if image else
                           _check_sizes(f, size) if size else None)
        found.extend((d, diags.sources) for d in diags)
    failed = any(d.severity == "error" for d, _ in found)
    if format == "json":
        out.print(json.dumps([d.as_json() for d, _ in found], indent=1), markup=False)
    else:
        for d, sources in found:
            err.print(d.render(sources), markup=False)
        if not failed:
            warned = f", {len(found)} warning{'s' if len(found) != 1 else ''}" if found \
                else ", no problems"
            out.print(f"ok: {len(files)} file{'s' if len(files) != 1 else ''}{warned}")
    if failed:
        raise typer.Exit(1)


def _check_sizes(file: Path, sizes: list[str]) -> SizeSpec:
    """``--size``: one size for every input, or one for each input of the file's cell
    by name (every input named)."""
    if len(sizes) == 1 and "=" not in sizes[0]:
        return parse_size(sizes[0])
    try:
        inputs = tuple(p.name for p in load(file).cell().inputs)
    except DpcError:  # check_file reports what is wrong with the file
        return None
    table = _per_input(sizes, parse_size, inputs, "--size")
    missing = [i for i in inputs if i not in table]
    if missing:
        raise typer.BadParameter(f"no size for input{'s' * (len(missing) > 1)} "
                                 f"{', '.join(missing)} of {file}; give each input's, or the "
                                 "image's (--image HxW)")
    return PerInput.of(table)


@app.command()
@handled
def fmt(files: Annotated[list[Path], typer.Argument(help=".dpc files", metavar="FILE")],
        check_only: Annotated[bool, typer.Option("--check", help="only report files that "
                                                 "would change")] = False) -> None:
    """Rewrite FILES in the canonical layout."""
    from dpcdsl._files import read_source
    from dpcdsl.lang.printer import formatted

    changed = []
    for f in files:
        text = read_source(f, "source file")
        new = formatted(text, str(f))
        if new != text:
            changed.append(f)
            if not check_only:
                f.write_text(new)
    for f in changed:
        (err if check_only else out).print(f"{'would reformat' if check_only else 'reformatted'}"
                                           f" {f}", markup=False)
    if check_only and changed:
        raise typer.Exit(1)


@app.command()
@handled
def count(file: FileArg, cell: CellOpt = None, param: ParamOpt = None) -> None:
    """Print the exact number of architectures in a cell's space."""
    from dpcdsl.limits import count_text

    out.print(count_text(_space(file, cell, param).count()))


@app.command()
@handled
def sample(file: FileArg, cell: CellOpt = None,
           n: Annotated[int, typer.Option("-n", help="how many", min=1)] = 1,
           seed: Annotated[int, typer.Option(help="random seed")] = 0,
           decisions: Annotated[bool, typer.Option(help="print the decisions too")] = False,
           output: Annotated[Path | None, typer.Option(
               "-o", "--output", help="write them here (default: stdout)")] = None,
           param: ParamOpt = None) -> None:
    """Draw architectures uniformly from a space; print them as .dpc text."""
    import random

    space = _space(file, cell, param)
    rng = random.Random(seed)
    texts = []
    for i in range(n):
        c, d = space.sample(rng)
        c = c.model_copy(update={"name": f"{c.name}_{i}" if n > 1 else c.name})
        head = f"# decisions: {json.dumps(d)}\n" if decisions else ""
        texts.append(head + c.canonical_text())
    if output is None:
        out.print("\n".join(texts), end="", markup=False)
        return
    output.write_text("\n".join(texts))
    err.print(f"wrote {output} ({n} architecture{'s' if n != 1 else ''})")


@app.command()
@handled
def cost(file: FileArg, cell: CellOpt = None,
         in_channels: Annotated[list[str], typer.Option(
             "--in-channels", help="input channels: C, or NAME=C per input")] = ["2048"],  # noqa: B006
         size: Annotated[list[str], typer.Option(
             "--size", help="feature size: HxW, or NAME=HxW per input")] = ["65x129"],  # noqa: B006
         format: Fmt = Format.text, param: ParamOpt = None) -> None:
    """Parameters and multiply-adds per node of a concrete cell."""
    c = _concrete(file, cell, param)
    report = cost_of(c, _per_input(in_channels, _int, c.inputs, "--in-channels"),
                     _per_input(size, parse_size, c.inputs, "--size"))
    if format == "json":
        out.print(json.dumps(report.as_json(), indent=1), markup=False)
        return
    # where atrous taps read only padding at this size, what the module computes too
    skipped = report.computed_madds != report.madds
    t = Table(title=f"{c.name}: cost", title_justify="left")
    for col in ("node", "op", "role", "out", "conv weights", "BN params", "MAdds",
                *(("computed",) if skipped else ())):
        t.add_column(col, justify="right" if col[0].isupper() or " " in col
                     or col == "computed" else "left")
    for r in report.nodes:
        t.add_row(r.name, r.detail, r.role, f"{r.channels}x{r.size[0]}x{r.size[1]}",
                  f"{r.conv_weights:,}", f"{r.bn_params:,}", f"{r.madds:,}",
                  *((f"{r.computed_madds:,}",) if skipped else ()))
    out.print(t)
    tot = report.totals()
    out.print(f"branch conv weights  {tot['branch_conv_weights']:>15,}")
    out.print(f"projection weights   {tot['projection_weights']:>15,}")
    out.print(f"BN parameters        {tot['bn_params']:>15,}")
    out.print(f"total parameters     {tot['params']:>15,}")
    out.print(f"branch MAdds         {tot['branch_madds']:>15,}  "
              f"({tot['branch_madds'] / 1e9:.2f}B)")
    out.print(f"total MAdds          {tot['madds']:>15,}  ({tot['madds'] / 1e9:.2f}B)")
    if skipped:
        out.print(f"computed MAdds       {tot['computed_madds']:>15,}  "
                  f"({tot['computed_madds'] / 1e9:.2f}B: atrous taps that read only "
                  "padding at this size are skipped)")


@app.command("compile")
@handled
def compile_(file: FileArg, cell: CellOpt = None,
             backend: Annotated[str | None, typer.Option(
                 help="an installed backend (default: the one of highest priority)")] = None,
             in_channels: InChannelsOpt = None,
             output_stride: OutputStrideOpt = 16,
             output: Annotated[Path | None, typer.Option(
                 "-o", "--output", help="write the source here (default: stdout)")] = None,
             param: ParamOpt = None,
             supernet: Annotated[bool, typer.Option(
                 "--supernet", help="compile the whole space to a supernet of shared "
                 "weights and show its bank (docs/oneshot.md)")] = False) -> None:
    """Compile a concrete cell to standalone source for a backend (or a space to a
    supernet, with --supernet)."""
    from dpcdsl.backends import emit, resolve

    if supernet:
        from dpcdsl.cli_oneshot import bank_summary

        bank_summary(file, cell, param, in_channels, output_stride, backend)
        return
    c = _concrete(file, cell, param)
    source = emit(c, backend=backend, output_stride=output_stride,
                  in_channels=_in_channels(c, in_channels))
    if output is None:
        out.print(source, end="", markup=False)
    else:
        output.write_text(source)
        err.print(f"wrote {output} ({source.count(chr(10))} lines, "
                  f"{resolve(backend).name} backend)")


@app.command("export")
@handled
def export_(source: Annotated[Path, typer.Argument(
                help="a .dpc file, a head of the library (dpcc heads), or a run folder of "
                     "dpcc train (or of a search re-ranked with --end-to-end)",
                show_default=False, metavar="FILE|HEAD|RUN_DIR", callback=_head_or_file)],
            format: Annotated[str, typer.Option(
                "--format", "-f", help="onnx (from the torch backend) or stablehlo (from "
                "the jax backend)")] = "onnx",
            output: Annotated[Path | None, typer.Option(
                "-o", "--output", help="the file to write (default: the cell's name with "
                "the format as suffix; a run's model.FORMAT in its folder)")] = None,
            cell: CellOpt = None, param: ParamOpt = None,
            in_channels: InChannelsOpt = None, image: ImageOpt = None,
            size: SizeOpt = None, output_stride: OutputStrideOpt = 16,
            weights: Annotated[Path | None, typer.Option(
                help="a safetensors file of the cell's canonical weights (default: "
                     "initialised from --seed)", show_default=False)] = None,
            seed: Annotated[int, typer.Option(help="seed of the initial weights")] = 0,
            check: Annotated[bool, typer.Option(
                help="run the written file against the module at two input shapes")] = True,
            ) -> None:
    """Export a head (with its weights) or a trained run's whole model to ONNX or
    StableHLO, and check the file against the module it came from."""
    from dpcdsl.deploy import export, export_run

    if source.is_dir():
        result = export_run(source, output, format,
                            image=parse_size(image) if image else None, check=check)
    else:
        c = _concrete(source, cell, param)
        result = export(c, output, format, in_channels=_in_channels(c, in_channels),
                        **_sizes(c, image, size), output_stride=output_stride,
                        weights=weights, seed=seed, check=check)
    err.print(result.summary(), markup=False)


@app.command()
@handled
def latency(file: FileArg, cell: CellOpt = None, param: ParamOpt = None,
            runtime: Annotated[list[str], typer.Option(
                "--runtime", "-r", help="onnxruntime, torch (eager), torch.compile or jax; "
                "once per runtime to compare several")] = ["onnxruntime"],  # noqa: B006
            in_channels: InChannelsOpt = None, image: ImageOpt = None,
            size: SizeOpt = None,
            batch: Annotated[int, typer.Option(min=1, help="images in a batch")] = 1,
            threads: Annotated[int, typer.Option(
                min=1, help="CPU threads the measurement runs on (it is pinned to as many "
                "CPUs)")] = 1,
            warmup: Annotated[int, typer.Option(min=0, help="untimed runs first")] = 5,
            runs: Annotated[int, typer.Option(min=1, help="timed runs")] = 20,
            output_stride: OutputStrideOpt = 16,
            format: Fmt = Format.text) -> None:
    """Measure a head's forward time on one or more runtimes, each in a process of its
    own: the median and spread of timed runs after warm-up runs."""
    from dpcdsl.deploy.latency import check_runtime
    from dpcdsl.deploy.latency import latency as measure

    c = _concrete(file, cell, param)
    channels, sizes = _in_channels(c, in_channels), _sizes(c, image, size)
    for r in runtime:  # every runtime known and installed before any is measured
        check_runtime(r)
    results = []
    for r in runtime:
        results.append(measure(c, r, in_channels=channels, **sizes, batch=batch,
                               threads=threads, warmup=warmup, runs=runs,
                               output_stride=output_stride))
        if format == "text":
            out.print(results[-1].summary())
    if format == "json":
        out.print(json.dumps([r.as_json() for r in results], indent=1), markup=False)



@app.command("cache")
@handled
def cache_(task: TaskOpt, quiet: QuietOpt = False, threads: ThreadsOpt = None,
           device: DeviceOpt = None, seed: SeedOpt = None) -> None:
    """Build the task's feature cache ahead of time (the backbone runs once)."""
    from dpcdsl.train.data.task import load_task
    from dpcdsl.train.proxy import ensure_cache

    spec = _runtime(load_task(task), threads, device, seed, quiet)
    cache = ensure_cache(spec, progress=_progress(quiet))
    sizes = cache.meta["splits"]
    levels = ", ".join(f"{cache.channels(v)}x{'x'.join(map(str, cache.size(v)))} at "
                       f"{'stride ' if v.deepest else 'level '}{v}" for v in cache.levels)
    out.print(f"cache {cache.path.resolve()}: {sizes['train']} train and {sizes['val']} val "
              f"images; features {levels} ({cache.meta['dtype']})")


@app.command()
@handled
def proxy(file: FileArg, task: TaskOpt, cell: CellOpt = None,
          backend: Annotated[str | None, typer.Option(
              help="an installed backend (default: the task's)")] = None,
          format: Fmt = Format.text, quiet: QuietOpt = False, threads: ThreadsOpt = None,
          device: DeviceOpt = None, seed: SeedOpt = None) -> None:
    """Train one cell on the proxy task (cached features) and print its mIOU."""
    from dpcdsl.train.data.task import load_task
    from dpcdsl.train.proxy import train

    spec = _runtime(load_task(task), threads, device, seed, quiet)
    c = _for_task(file, cell, spec)
    result = train(c, spec, backend=backend, progress=_progress(quiet))
    if format == "json":
        out.print(json.dumps(result.model_dump(), indent=1), markup=False)
        return
    out.print(f"{c.name}: mIOU {result.miou:.1f} after {result.steps} steps "
              f"({result.backend}, {result.wall_s:.1f} s); {result.params:,} parameters, "
              f"{result.madds / 1e9:.2f}B multiply-adds")
    ious = ", ".join("-" if v is None else f"{v:.1f}" for v in result.per_class_iou)
    out.print(f"per-class IoU: {ious}")


@app.command("train")
@handled
def train_(file: FileArg, task: TaskOpt, cell: CellOpt = None,
           run_dir: Annotated[Path, typer.Option("--run-dir", help="checkpoints go here")] = Path(
               "runs/train"),
           resume: Annotated[bool, typer.Option(help="continue from the last checkpoint")] = False,
           quiet: QuietOpt = False, threads: ThreadsOpt = None, device: DeviceOpt = None,
           seed: SeedOpt = None) -> None:
    """Train the full model (backbone + cell + classifier) end to end."""
    from dpcdsl.backends import resolve
    from dpcdsl.train.data.task import load_task
    from dpcdsl.train.progress import StepProgress

    spec = _runtime(load_task(task), threads, device, seed, quiet)
    c = _for_task(file, cell, spec)
    with StepProgress(spec.train.steps, _progress(quiet), f"{c.name} end to end") as shown:
        record = resolve(spec.backend, "train_model").train_model(
            c, spec, run_dir, resume=resume, callback=shown.evaluated)
    k, miou = record["evals"][-1]
    out.print(f"{c.name}: mIOU {miou:.1f} at step {k}; checkpoint in {run_dir}")


@app.command("eval")
@handled
def eval_(run_dir: Annotated[Path, typer.Argument(help="a run folder from dpcc train",
                                                  metavar="RUN_DIR")]) -> None:
    """Evaluate a checkpoint on its task's val split."""
    from dpcdsl.backends import default

    out.print(f"mIOU {default('evaluate_run').evaluate_run(run_dir):.1f}")


def _settings(pairs: list[str] | None) -> dict[str, Any]:
    from dpcdsl.search.strategies import parse_settings

    return parse_settings(pairs or [])


#: each kind of search option (the ``kind`` of its field): its type on the command
#: line (None: a list of its choices) and how its value is read from there
_KINDS: dict[str, tuple[Any, Callable[[Any], Any]]] = {
    "count": (str | None, lambda v: None if v is None else parse_count(v)),
    "duration": (str | None, lambda v: None if v is None else parse_duration(v)),
    "settings": (list[str] | None, _settings),
    "list": (str | None, lambda v: v.split(",") if v else None),
    "many": (None, lambda v: tuple(a.value for a in v or ())),
    "flag": (bool, lambda v: v),
    "head": (Path | None, lambda v: v),
}


def _search_options() -> list[inspect.Parameter]:
    """The options of ``dpcc search``, one per field of the search's configuration
    (:mod:`dpcdsl.search.config`), each made from the field's declaration."""
    from dpcdsl.search.config import fields

    params = []
    for f in fields():
        meta = f.meta
        if not meta["cli"]:
            continue
        name = meta.get("cli_name") or f.flat.replace("_", "-")
        kind, default = str(meta.get("kind")), meta.get("cli_default", f.default)
        extra = {k: meta[k] for k in ("min", "metavar") if k in meta}
        kind_type = _KINDS[kind][0] if kind in _KINDS else None
        if "choices" in meta:
            choice = Enum(f.flat.title().replace("_", ""),  # type: ignore[misc]
                          {c: c for c in meta["choices"]}, type=str)
            kind_type = list[choice] | None if kind == "many" else choice  # type: ignore
            default = None if kind == "many" else choice(default)
        elif kind in ("settings", "list", "count", "duration"):
            default = None
        elif kind == "head":
            extra["callback"] = lambda v: None if v is None else _head_or_file(v)
        annotation = kind_type or _field_type(f.group, f.name)
        params.append(inspect.Parameter(
            f.flat, inspect.Parameter.KEYWORD_ONLY, default=default,
            annotation=Annotated[annotation, typer.Option(f"--{name}", help=meta["help"],
                                                          **extra)]))
    return params


def _field_type(group: str, name: str) -> Any:
    from typing import get_type_hints

    from dpcdsl.search.config import GROUPS

    return get_type_hints(GROUPS[group])[name]


def _search_config(file: Path, task: Path, cell: str | None, quiet: bool,
                   options: dict[str, Any]) -> Any:
    """The search's configuration from ``dpcc search``'s options, each parsed from its
    text as its field declares."""
    from dpcdsl.search.config import FLAT, SearchConfig

    values = {}
    for flat, value in options.items():
        kind = FLAT[flat].meta.get("kind")
        value = value.value if isinstance(value, Enum) else value
        values[flat] = _KINDS[kind][1](value) if kind in _KINDS else value
    return SearchConfig(file, task, cell=cell, progress=_progress(quiet), **values)


def search(file: FileArg, task: TaskOpt, cell: CellOpt = None, quiet: QuietOpt = False,
           **options: Any) -> None:
    """Search a space on the proxy task; best.dpc, report.html and more in --run-dir."""
    from dpcdsl.search.driver import search as run_search
    from dpcdsl.search.objectives import describe, score
    from dpcdsl.search.report import ranked, values_text
    from dpcdsl.search.strategies import room_warning
    from dpcdsl.search.summary import pareto_set
    from dpcdsl.train.data.task import load_task

    cfg = _search_config(file, task, cell, quiet, options)
    warning = room_warning(cfg.strategy.name, cfg.strategy.trials,
                           cfg.strategy_settings(load_task(task)))
    if warning:
        err.print(f"warning: {warning}", markup=False)
    study = run_search(cfg)
    rows = ranked(study)
    run_dir = cfg.storage.run_dir
    if not rows:  # an honest exit: no trial finished, so there is no best cell
        reasons = Counter(t.user_attrs.get("failure", t.state.name.lower())
                          for t in study.trials)
        err.print(f"error: no trial of {len(study.trials)} finished; nothing to report as "
                  "best. Failures:", markup=False)
        for reason, n in reasons.most_common():
            err.print(f"  {n} x {reason}", markup=False)
        err.print(f"the failed trials are in {run_dir}/report.html", markup=False)
        raise typer.Exit(1)
    best = rows[0]
    out.print(f"best of {len(rows)} trials: mIOU {score(best):.2f} (trial {best.number})")
    out.print(best.user_attrs["cell"], end="", markup=False)
    front = pareto_set(study, rows)
    if front is not None:
        out.print(f"{len(front.trials)} cells on the Pareto front of "
                  f"{describe(front.objectives)} (hypervolume {front.hypervolume:.4f}):")
        for t in front.trials:
            out.print(f"  trial {t.number}: {values_text(t, front.objectives)}", markup=False)
    out.print(f"results in {run_dir}: best.dpc, best.svg, best/, "
              f"{'pareto/, ' if front is not None else ''}leaderboard.csv, report.html")


# the options after the file, the task, the cell and --quiet come from the search's
# configuration: a new option of SearchConfig is an option here without an edit
_own = [p for p in inspect.signature(search, eval_str=True).parameters.values()
        if p.kind is not inspect.Parameter.VAR_KEYWORD]
search.__signature__ = inspect.Signature(_own + _search_options())  # type: ignore[attr-defined]
search = app.command()(handled(search))


@app.command()
@handled
def report(run_dir: Annotated[Path, typer.Argument(help="a search's run folder",
                                                   metavar="RUN_DIR")],
           storage: Annotated[str | None, typer.Option(help="Optuna storage URL")] = None,
           ) -> None:
    """Rebuild a search's report and best cell from its study."""
    from dpcdsl.search.report import rebuild

    out.print(f"wrote {rebuild(run_dir, storage)}")


@app.command()
@handled
def rerank(run_dir: Annotated[Path, typer.Argument(help="a search's run folder",
                                                   metavar="RUN_DIR")],
           top: Annotated[int | None, typer.Option(
               help="how many of the best cells [default: 5; of a multi-objective search, "
                    "its whole Pareto front]", min=1)] = None,
           steps: Annotated[int | None, typer.Option(
               help="training steps each (default: the --task's, else 1000)", min=1)] = None,
           end_to_end: Annotated[bool, typer.Option(
               "--end-to-end", help="train full models, not heads on cached features")] = False,
           storage: Annotated[str | None, typer.Option(help="Optuna storage URL")] = None,
           task: Annotated[Path | None, typer.Option(
               "--task", "-t", help="re-rank under this task, e.g. another backbone "
               "(default: the search's)")] = None,
           quiet: QuietOpt = False, threads: ThreadsOpt = None, device: DeviceOpt = None,
           seed: SeedOpt = None) -> None:
    """Retrain the top cells longer (or end to end) and compare the rankings."""
    from dpcdsl.search.rerank import rerank as run_rerank
    from dpcdsl.train.data.task import load_task

    result = run_rerank(run_dir, top, steps, end_to_end, storage,
                        load_task(task) if task is not None else None,
                        progress=_progress(quiet),
                        runtime=lambda t: _runtime(t, threads, device, seed, quiet))
    for r in result["rows"]:
        kept = "" if "front" not in r else \
            ("  (stays on the front)" if r["front"] else "  (leaves the front)")
        out.print(f"trial {r['trial']}: {result['scored_by']} mIOU {r['proxy_miou']:.2f} -> "
                  f"{r['rerank_miou']:.2f}{kept}")
    out.print(f"Spearman rank correlation: {result['spearman']:.3f}")


@app.command()
@handled
def viz(file: FileArg, cell: CellOpt = None,
        output: Annotated[Path, typer.Option("-o", "--output",
                                             help="out.svg, out.png or out.dot")] = Path(
            "cell.svg"),
        seed: Annotated[int | None, typer.Option(help="draw a sample of a space")] = None,
        param: ParamOpt = None) -> None:
    """Draw a cell (or, with --seed, a sample of a space) with graphviz."""
    from dpcdsl.compiler.graph import render

    space = _space(file, cell, param)
    if seed is None and not space.is_concrete:
        from dpcdsl.limits import count_text

        raise DpcError.at(space.cell_def.span, f"cell '{space.name}' is a search space of "
                          f"{count_text(space.count(), exact=False)} architectures",
                          hint=f"draw one of them with --seed: `dpcc viz {file} --seed 0`",
                          sources=space.program.sources, code="DPC602")
    c = space.sample(seed)[0] if seed is not None else space.concrete()
    render(c, output)
    out.print(f"wrote {output}")


@app.command("import-deeplab")
@handled
def import_deeplab(json_file: Annotated[Path, typer.Argument(help="DeepLab JSON cell",
                                                             metavar="JSON")],
                   output: Annotated[Path | None, typer.Option("-o", "--output")] = None,
                   name: Annotated[str | None, typer.Option(help="cell name")] = None,
                   crop: Annotated[str | None, typer.Option(
                       help="the crop size HxW (or N), which sets the reference's pooling "
                            "window")] = None,
                   pooling: Annotated[Pooling, typer.Option(
                       help="reference (the stride-1 window the reference computes) or "
                            "paper (the grid)")] = Pooling.reference) -> None:
    """Convert the reference implementation's JSON cell to .dpc."""
    from dpcdsl.compiler.interop import deeplab

    text, _ = deeplab.read(json_file, name, pooling=pooling.value,
                           crop=parse_size(crop) if crop else None)
    if output is None:
        out.print(text, end="", markup=False)
    else:
        output.write_text(text)
        out.print(f"wrote {output}")


@app.command("export-deeplab")
@handled
def export_deeplab(file: FileArg, cell: CellOpt = None,
                   output: Annotated[Path | None, typer.Option("-o", "--output")] = None
                   ) -> None:
    """Write a DPC-shaped cell as the reference implementation's JSON."""
    from dpcdsl.compiler.interop import deeplab

    c = _concrete(file, cell)
    if output is None:
        out.print(json.dumps(deeplab.to_json(c), indent=1), markup=False)
    else:
        deeplab.write(c, output)
        out.print(f"wrote {output}")
    for name, (h, w) in deeplab.crops(c).items():
        err.print(f"note: {name} pools as the reference does at crop {h}x{w}; the JSON holds "
                  f"no crop: run the reference with --crop_size {h},{w}", markup=False)


@app.command()
@handled
def heads() -> None:
    """List the library of heads (torchvision's and smp's, as .dpc files)."""
    from dpcdsl.lang import heads as library

    t = Table("head", "inputs", "reproduces", box=None)
    for name in library.names():
        text = library.path(name).read_text()
        first = next((line[1:].strip() for line in text.splitlines()
                      if line.startswith("#")), "")
        t.add_row(name, ", ".join(library.load(name).concrete().inputs),
                  first.split(":")[0].split(" (")[0])
    out.print(t)


@app.command()
@handled
def ops() -> None:
    """List the ops: each one's inputs, arguments and where it comes from (built in, or
    the installed op plugin that adds it)."""
    from dpcdsl.ops import BUILTIN, OPS, load_plugins

    source = {spec.name: "built in" for spec in BUILTIN}
    for plugin, module in load_plugins().items():
        source.update({spec.name: f"plugin {plugin}" for spec in module.OPS})
    t = Table(box=None)
    for col in ("op", "inputs", "arguments", "from", "what it does"):
        t.add_column(col, no_wrap=col in ("op", "inputs", "from"))
    for name, spec in OPS.items():
        lo, hi = spec.min_inputs, spec.max_inputs
        inputs = f"{lo}" if lo == hi else f"{lo}+" if hi is None else f"{lo}-{hi}"
        args = ", ".join(a.name for a in spec.args if a.kind != "tensor")
        t.add_row(name, inputs, args, source.get(name, "registered"), spec.doc)
    out.print(t)


@app.command()
@handled
def tour(examples: Annotated[Path | None, typer.Option(
             help="folder of .dpc examples (default: the packaged examples)",
             show_default=False)] = None,
         output: Annotated[Path, typer.Option("-o", "--output",
                                              help="where pictures go")] = Path("out/tour"),
         ) -> None:
    """Check, count, cost and draw every example: the language end to end."""
    from rich.progress import track

    from dpcdsl.compiler.graph import render

    if examples is None:
        from dpcdsl.lang.heads import examples_dir

        examples = examples_dir()
    files = sorted(examples.glob("*.dpc"))
    if not files:
        raise _fail(f"error: no .dpc files in {examples}")
    output.mkdir(parents=True, exist_ok=True)
    t = Table(title="dpcdsl tour", title_justify="left")
    for col in ("file", "cell", "architectures", "params", "MAdds", "picture"):
        t.add_column(col)
    for f in track(files, description="touring examples", console=err, transient=True):
        diags = check_file(f)
        if diags or diags.program is None:
            raise DpcError(diags, diags.sources)
        space = Space(diags.program)
        c = space.concrete() if space.is_concrete else space.sample(0)[0]
        sizes = {i: (65, 129) if k == 0 else (257, 513) for k, i in enumerate(c.inputs)}
        report = cost_of(c, 2048 if len(c.inputs) == 1 else 256, sizes)
        pic = render(c, output / f"{f.stem}.svg")
        t.add_row(f.name, space.name, f"{space.count():,}", f"{report.params:,}",
                  f"{report.madds / 1e9:.2f}B", str(pic))
    out.print(t)
    out.print("costs at 2048 input channels, 65x129 features (decoders: 256 channels, "
              "65x129 and 257x513); spaces are shown by their sample with seed 0")



app.add_typer(supernet_app)


def _show_warning(message: Warning | str, category: type[Warning], filename: str,
                  lineno: int, file: Any = None, line: str | None = None) -> None:
    """The project's warnings as one plain line, not Python's file:line form."""
    err.print(f"warning: {message}")


def main() -> None:
    import warnings

    warnings.showwarning = _show_warning
    try:
        app()
    except KeyboardInterrupt:  # pragma: no cover
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    main()
