"""The ``presetforge`` command: parse, call the library, print. Exit codes: 0 verified,
1 parity failed, 2 bad input."""

import functools
import json
import shutil
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from presetforge.errors import PresetforgeError

EXIT_OK, EXIT_PARITY_FAILED, EXIT_BAD_INPUT = 0, 1, 2
DTYPES = click.Choice(["float32", "bfloat16", "float16"])

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def _clear_errors(command):
    """Turn expected failures into one line on stderr and exit code 2, no traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (PresetforgeError, ValueError, OSError) as e:
            err.print(f"[bold red]error:[/] {e}", highlight=False)
            sys.exit(EXIT_BAD_INPUT)

    return wrapper


def _progress(enabled):
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[tensor]}", style="dim"),
        console=err,
        disable=not enabled,
        transient=True,
    )


def _source_dir(source):
    path = Path(source)
    if not (path / "config.json").is_file():
        raise PresetforgeError(f"'{source}' is not a Hugging Face checkpoint directory (no config.json)")
    return path


def _convert(source, output, dtype, show_progress):
    from presetforge.converters import convert

    with _progress(show_progress) as progress:
        task = progress.add_task("converting", total=None, tensor="")

        def advance(done, total, name):
            progress.update(task, completed=done, total=total, tensor=name)

        return convert(source, output, dtype=dtype, progress=advance)


def _parity_table(report):
    table = Table(title=f"parity vs {report.reference['implementation']} ({report.dtype})", title_justify="left")
    for column in ("stage", "max abs", "mean abs", "min cosine", "limit", "ok"):
        table.add_column(column, justify="left" if column == "stage" else "right")
    for s in report.stages:
        ok = "[green]yes[/]" if s.passed else "[bold red]NO[/]"
        table.add_row(s.name, f"{s.max_abs:.2e}", f"{s.mean_abs:.2e}", f"{s.min_cosine:.7f}", f"{s.limit:.1e}", ok)
    return table


def _verdict(report, preset_dir):
    tok = report.tokenizer
    tokenizer = (f"identical ids on {tok.texts} texts" if tok.passed else f"{len(tok.mismatches)} texts differ") if tok.checked else f"not checked ({tok.reason})"
    out.print(f"tokenizer: {tokenizer}")
    if report.passed:
        out.print(f"[bold green]VERIFIED[/] {preset_dir} (worst max abs error {report.worst_max_abs:.2e})")
        return EXIT_OK
    first = report.first_failing_stage or "tokenizer"
    out.print(f"[bold red]PARITY FAILED[/] {preset_dir}: first diverging stage '{first}'; see parity.md")
    return EXIT_PARITY_FAILED


def run_check(preset_dir, reference, write, as_json):
    """Check parity, optionally store the report in the preset; return the exit code."""
    from presetforge.checks import parity, report as report_lib

    report = parity.check(preset_dir, reference)
    if write:
        report_lib.write(Path(preset_dir), report)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2, sort_keys=True))
        return EXIT_OK if report.passed else EXIT_PARITY_FAILED
    out.print(_parity_table(report))
    return _verdict(report, preset_dir)


@click.group()
@click.version_option(package_name="presetforge")
def main():
    """Convert Hugging Face checkpoints to verified Keras 3 presets."""


@main.command("convert")
@click.argument("source")
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path), help="Preset directory to write.")
@click.option("--dtype", type=DTYPES, default="float32", show_default=True, help="Dtype of the stored weights.")
@click.option("--check/--no-check", default=True, show_default=True, help="Run the parity gate after converting.")
@click.option("--json", "as_json", is_flag=True, help="Print the parity report as JSON.")
@_clear_errors
def convert_command(source, output, dtype, check, as_json):
    """Convert the checkpoint at SOURCE (a local HF directory) into a preset, then verify it."""
    result = _convert(_source_dir(source), output, dtype, show_progress=not as_json)
    if not as_json:
        out.print(
            f"converted {result.backbone_class} ({result.parameter_count:,} parameters, {result.tensor_count} tensors, "
            f"{result.dtype}) into {result.output}"
        )
    if not check:
        out.print("[yellow]not verified[/]: --no-check given; run `presetforge check` before publishing")
        sys.exit(EXIT_OK)
    sys.exit(run_check(result.output, _source_dir(source), write=True, as_json=as_json))


@main.command("check")
@click.argument("preset", type=click.Path(path_type=Path))
@click.option("--reference", required=True, help="The upstream HF checkpoint directory to compare against.")
@click.option("--write/--no-write", default=True, show_default=True, help="Store the report in the preset.")
@click.option("--json", "as_json", is_flag=True, help="Print the full report as JSON.")
@_clear_errors
def check_command(preset, reference, write, as_json):
    """Check PRESET against its upstream reference, layer by layer."""
    sys.exit(run_check(preset, _source_dir(reference), write=write, as_json=as_json))


@main.command("demo")
@click.option("--workdir", type=click.Path(path_type=Path), default=Path("out"), show_default=True)
@_clear_errors
def demo_command(workdir):
    """Offline demo: convert the real all-MiniLM-L6-v2, verify it, load it, compare sentences."""
    from presetforge import demo
    from presetforge.backbones import Backbone
    from presetforge.tokenizers import Tokenizer

    source = demo.minilm_dir()
    preset_dir = workdir / "all_minilm_l6_v2_en"
    if preset_dir.exists():
        shutil.rmtree(preset_dir)
    out.print(f"[bold]1/3 convert[/] {source} -> {preset_dir}")
    result = _convert(source, preset_dir, "float32", show_progress=True)
    out.print(f"converted {result.backbone_class}, {result.parameter_count:,} parameters")
    out.print("[bold]2/3 parity gate[/] against transformers (float32, eager attention)")
    code = run_check(result.output, source, write=True, as_json=False)
    if code:
        sys.exit(code)
    out.print("[bold]3/3 load and use[/] Backbone.from_preset + Tokenizer.from_preset")
    backbone, tokenizer = Backbone.from_preset(preset_dir), Tokenizer.from_preset(preset_dir)
    ours = demo.sentence_embeddings(backbone, tokenizer, demo.SENTENCES)
    theirs = demo.reference_embeddings(source, tokenizer, demo.SENTENCES)
    table = Table(title="cosine similarity of sentence embeddings (presetforge backbone)", title_justify="left")
    table.add_column("sentence")
    for i in range(len(demo.SENTENCES)):
        table.add_column(f"s{i}", justify="right")
    similarity = ours @ ours.T
    for i, sentence in enumerate(demo.SENTENCES):
        table.add_row(f"s{i} {sentence}", *(f"{similarity[i, j]:.3f}" for j in range(len(demo.SENTENCES))))
    out.print(table)
    out.print(f"max abs difference from transformers' sentence embeddings: {abs(ours - theirs).max():.2e}")
