"""``dpcc supernet``: train a space's supernet, and take candidates out of it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from dpcdsl.cli_common import (
    CellOpt,
    DeviceOpt,
    FileArg,
    ParamOpt,
    QuietOpt,
    TaskOpt,
    ThreadsOpt,
    _in_channels,
    _progress,
    _runtime,
    _space,
    err,
    handled,
    out,
)

app = typer.Typer(name="supernet", no_args_is_help=True,
                  help="One-shot search: train a whole space's supernet on the proxy task, "
                       "and take candidates out of it with their inherited weights.")

RunDirOpt = Annotated[Path, typer.Option("--run-dir", help="the supernet's run folder")]


def _decisions(text: str) -> dict[str, int]:
    """``--decisions``: a JSON object, or a file that holds one, or a cell drawn by
    ``dpcc sample --decisions`` (its ``# decisions:`` line)."""
    source = Path(text)
    raw = source.read_text() if source.is_file() else text
    for line in raw.splitlines():
        if line.startswith("# decisions:"):
            raw = line.split(":", 1)[1]
            break
    try:
        found = json.loads(raw)
    except ValueError as e:
        raise typer.BadParameter(f"not a JSON object of decisions: {e}",
                                 param_hint="--decisions") from None
    found = found.get("decisions", found) if isinstance(found, dict) else found
    if not isinstance(found, dict) or not all(isinstance(v, int) for v in found.values()):
        raise typer.BadParameter('expected a JSON object of choice paths and option '
                                 'indices, e.g. {"b0.op": 1, "b0.rate.h": 3}',
                                 param_hint="--decisions")
    return found


@app.command("train")
@handled
def train(file: FileArg, task: TaskOpt, cell: CellOpt = None, param: ParamOpt = None,
          run_dir: RunDirOpt = Path("runs/supernet"),
          resume: Annotated[bool, typer.Option(help="continue from the last checkpoint")] = False,
          steps: Annotated[int | None, typer.Option(
              min=1, help="training steps \\[default: the task's train.steps]",
              show_default=False)] = None,
          quiet: QuietOpt = False, threads: ThreadsOpt = None, device: DeviceOpt = None,
          seed: Annotated[int | None, typer.Option(
              help="seed of the weights, candidates and batches \\[default: the task's]",
              show_default=False)] = None) -> None:
    """Train a space's supernet on the task's cached features.

    Each step trains one candidate drawn uniformly from the space, on the step's batch;
    checkpoints at every evaluation, and --resume goes on exactly."""
    from dpcdsl.train.data.task import load_task
    from dpcdsl.train.oneshot import train_supernet

    spec = _runtime(load_task(task), threads, device, seed, quiet)
    if steps is not None:
        spec = spec.model_copy(update={"train": spec.train.model_copy(update={"steps": steps})})
    space = _space(file, cell, param)
    record = train_supernet(space, spec, run_dir, resume=resume, progress=_progress(quiet))
    bank = record["bank"]
    k, miou = record["evals"][-1]
    out.print(f"supernet of {space.name}: {bank['params']:,} shared parameters in "
              f"{bank['tensors']:,} tensors; step {k}, mean mIOU {miou:.1f} of "
              f"{record['eval_candidates']} candidates (BatchNorm recalibrated on "
              f"{record['calibration_batches']} batches); checkpoint in {run_dir}")


@app.command("extract")
@handled
def extract(file: FileArg, task: TaskOpt, decisions: Annotated[str, typer.Option(
                help="the candidate: a JSON object of decisions, or a file holding one",
                show_default=False)],
            output: Annotated[Path, typer.Option(
                "-o", "--output", help="the safetensors file to write; the cell's .dpc "
                "goes beside it")],
            cell: CellOpt = None, param: ParamOpt = None,
            run_dir: RunDirOpt = Path("runs/supernet")) -> None:
    """Take a candidate out of a trained supernet, with its inherited weights.

    Writes the cell as .dpc and its weights as safetensors, under the canonical names
    that dpcdsl.compile(cell) loads."""
    from dpcdsl.train import weightfile
    from dpcdsl.train.data.task import load_task
    from dpcdsl.train.oneshot import open_supernet

    space = _space(file, cell, param)
    shot = open_supernet(space, load_task(task), run_dir)
    chosen = _decisions(decisions)
    chosen_cell = space.decode(chosen)  # decisions that are not the space's are refused
    weights = {k.split(".", 1)[1]: v for k, v in shot.steps.extract(chosen).items()
               if k.startswith("cell.")}
    output.parent.mkdir(parents=True, exist_ok=True)
    weightfile.write(weights, output)
    output.with_suffix(".dpc").write_text(chosen_cell.canonical_text())
    out.print(f"wrote {output} ({len(weights)} tensors of {chosen_cell.name}) and "
              f"{output.with_suffix('.dpc')}")


def bank_summary(file: Path, cell: str | None, param: list[str] | None,
                 in_channels: list[str] | None, output_stride: int,
                 backend: str | None) -> None:
    """``dpcc compile --supernet``: the space's bank of shared weights, by position."""
    from dpcdsl.backends import compile_space

    space = _space(file, cell, param)
    sample, _ = space.sample(0)
    channels = _in_channels(sample, in_channels)
    net = compile_space(space, backend=backend, in_channels=channels,
                        output_stride=output_stride)
    by_position: dict[str, list[Any]] = {}
    for key, w in net.bank.weights.items():
        by_position.setdefault(key.split(":", 1)[0], []).append(w)
    out.print(f"supernet of {space.name} ({space.count():,} candidates): "
              f"{net.bank.describe()}")
    for position, ws in by_position.items():
        params = sum(w.size for w in ws if w.kind != "stat")
        out.print(f"  {position:<24} {len(ws):>4} tensors {params:>13,} parameters")
    err.print("the weight sharing: docs/oneshot.md")


__all__ = ["app", "bank_summary"]
