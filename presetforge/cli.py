"""The ``presetforge`` command: parse, call the library, print. Exit codes: 0 verified,
1 parity failed, 2 bad input, 128 + the signal's number when interrupted (130 SIGINT,
143 SIGTERM, 129 SIGHUP)."""

import dataclasses
import functools
import json
import shutil
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from presetforge import interrupts
from presetforge.errors import PresetforgeError

EXIT_OK, EXIT_PARITY_FAILED, EXIT_BAD_INPUT = 0, 1, 2
DTYPES = click.Choice(["float32", "bfloat16", "float16"])

# Markup off: messages carry paths, handles and upstream names, printed as they are (a '[/version]'
# in a hint is text, not a closing tag); styles come only from Text objects built here.
out = Console(soft_wrap=True, markup=False)
err = Console(stderr=True, soft_wrap=True, markup=False)


def _clear_errors(command):
    """Turn expected failures into one line on stderr and exit code 2; the traceback only with --debug."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (PresetforgeError, ValueError, OSError) as e:
            if click.get_current_context().find_root().params.get("debug"):
                err.print_exception()
            _print_error(e)
            sys.exit(EXIT_BAD_INPUT)

    return wrapper


def _print_error(error):
    """``error: <message>`` on stderr, as one line whatever the message holds."""
    line = " ".join(part.strip() for part in str(error).splitlines() if part.strip())
    err.print(Text.assemble(("error:", "bold red"), f" {line}"), highlight=False)


def _progress(enabled):
    return Progress(
        TextColumn("{task.description}", style="bold", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[tensor]}", style="dim", markup=False),
        console=err,
        disable=not enabled,
        transient=True,
    )


def _source_dir(source):
    path = Path(source)
    if not (path / "config.json").is_file():
        raise PresetforgeError(f"'{source}' is not a Hugging Face checkpoint directory (no config.json)")
    return path


def _convert(source, output, dtype, show_progress, source_repo=None, revision=None):
    from presetforge.converters import convert

    with _progress(show_progress) as progress:
        task = progress.add_task("converting", total=None, tensor="")

        def advance(done, total, name):
            progress.update(task, completed=done, total=total, tensor=name)

        return convert(source, output, dtype=dtype, progress=advance, source_repo=source_repo, revision=revision)


def _parity_table(report):
    table = Table(title=f"parity vs {report.reference['implementation']} ({report.dtype})", title_justify="left")
    for column in ("stage", "max abs", "mean abs", "min cosine", "limit", "ok", "end to end"):
        table.add_column(column, justify="left" if column == "stage" else "right")
    for s, e in zip(report.stages, report.end_to_end, strict=True):
        ok = Text("yes", style="green") if s.passed else Text("NO", style="bold red")
        table.add_row(s.name, f"{s.max_abs:.2e}", f"{s.mean_abs:.2e}", f"{s.min_cosine:.7f}", f"{s.limit:.1e}", ok,
                      f"{e.max_abs:.2e}")
    return table


def _verdict(report, preset_dir):
    tok = report.tokenizer
    tokenizer = (f"identical ids on {tok.texts} texts" if tok.passed else f"{len(tok.mismatches)} texts differ") if tok.checked else f"not checked ({tok.reason})"
    out.print(f"weights: {report.weights.describe()}")
    if report.top1_line():
        out.print(f"logits: {report.top1_line()}")
    out.print(f"tokenizer: {tokenizer}")
    if report.passed:
        worst = f"worst max abs error {report.worst_max_abs:.2e}"
        out.print(Text.assemble(("VERIFIED", "bold green"), f" {preset_dir} ({worst})"))
        return EXIT_OK
    out.print(Text.assemble(("PARITY FAILED", "bold red"), f" {preset_dir}: {report.first_failure}; see parity.md"))
    return EXIT_PARITY_FAILED


def _probe_lengths(ctx, param, value):
    try:
        lengths = tuple(int(part) for part in value.split(","))
    except ValueError:
        lengths = ()
    if not lengths or min(lengths) < 1:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of positive lengths")
    return lengths


def _check_options(command):
    """The parity check's options, shared by ``check`` and ``convert``; they arrive as ``check_options``."""
    options = [
        click.option("--probe-lengths", default=",".join(map(str, CHECK_DEFAULTS["probe_lengths"])),
                     show_default=True, callback=_probe_lengths,
                     help="Token counts of the padded probe batch, one sequence each (capped at the model's "
                          "max_sequence_length)."),
        click.option("--full-length-cap", type=click.IntRange(min=1), default=CHECK_DEFAULTS["full_length_cap"],
                     show_default=True,
                     help="Tokens of the full-length probe: the model's max_sequence_length, at most this."),
        click.option("--whole-model", is_flag=True,
                     help="Load both models whole instead of a block at a time (a cross-check; memory for both)."),
    ]

    @functools.wraps(command)
    def wrapper(*args, probe_lengths, full_length_cap, whole_model, **kwargs):
        check_options = dict(probe_lengths=probe_lengths, full_length_cap=full_length_cap, streamed=not whole_model)
        return command(*args, check_options=check_options, **kwargs)

    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper


# parity.check's defaults, spelled here so that --help needs no framework (a test keeps them equal).
CHECK_DEFAULTS = dict(probe_lengths=(24, 17, 9, 3), full_length_cap=2048, streamed=True)


def _refuse_check_options(check_options, why):
    changed = [name for name, value in check_options.items() if value != CHECK_DEFAULTS[name]]
    if changed:
        option = {"probe_lengths": "--probe-lengths", "full_length_cap": "--full-length-cap",
                  "streamed": "--whole-model"}[changed[0]]
        raise PresetforgeError(f"{option} applies to a preset directory: {why}")


def run_check(preset_dir, reference, write, as_json, name=None, check_options=None):
    """Check parity, optionally store the report (and model card, naming ``name``) in the preset;
    return the exit code. ``check_options`` go to ``parity.check`` (probes, whole model)."""
    from presetforge.checks import parity, report as report_lib

    with _progress(not as_json) as progress:
        tasks = {}

        def advance(phase, done, total):
            if phase not in tasks:
                description = {"weights": "checking weights", "reference": "reference stages",
                               "ours": "our stages"}[phase]
                tasks[phase] = progress.add_task(description, total=total, tensor="")
            progress.update(tasks[phase], completed=done, total=total)

        report = parity.check(preset_dir, reference, progress=advance, **(check_options or {}))
    if write:
        report_lib.write(Path(preset_dir), report, name=name)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2, sort_keys=True))
        return EXIT_OK if report.passed else EXIT_PARITY_FAILED
    out.print(_parity_table(report))
    return _verdict(report, preset_dir)


class _Commands(click.Group):
    """The command group; SIGINT, SIGTERM and SIGHUP end any command alike: what it was writing
    discarded (``interrupts.signals_raise``), one line on stderr, exit status 128 + the signal."""

    def invoke(self, ctx):
        try:
            with interrupts.signals_raise():
                return super().invoke(ctx)
        except interrupts.Interrupted as e:
            _print_error(e)
            sys.exit(e.exit_status)


@click.group(cls=_Commands)
@click.version_option(package_name="presetforge")
@click.option("--debug", is_flag=True, help="On an error, show its traceback too.")
def main(debug):
    """Convert Hugging Face checkpoints to verified Keras 3 presets."""


def _is_catalog_source(source):
    from presetforge.registry import catalog

    return not Path(source).exists() and bool(catalog.family(source))


def _local_checkpoint(source):
    """A local HF directory for SOURCE, downloading an ``hf://`` handle first."""
    return _upstream(source)[0]


def _upstream(source):
    """``(directory, repo id, revision)`` of SOURCE; an ``hf://`` handle is downloaded, and the
    revision recorded is the commit its snapshot holds."""
    if source.startswith("hf://"):
        from presetforge.registry import handles, hub

        parsed = handles.parse(source)
        path = hub.download(parsed)
        return path, parsed.repo_id, path.name
    return _source_dir(source), None, None


@main.command("convert")
@click.argument("source")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Preset directory (for one checkpoint).")
@click.option("--dtype", type=DTYPES, default="float32", show_default=True, help="Dtype of the stored weights.")
@click.option("--check/--no-check", default=True, show_default=True, help="Run the parity gate after converting.")
@click.option("--json", "as_json", is_flag=True, help="Print the parity report (or push summary) as JSON.")
@click.option("--name", help="The preset's catalog name, for its model card (catalog sources use their own).")
@click.option("--push", is_flag=True, help="Publish verified catalog presets to their targets.")
@click.option("--dry-run", is_flag=True, help="With a catalog family or preset: show the plan only.")
@click.option("--workdir", type=click.Path(path_type=Path), default=Path("out/presets"), show_default=True,
              help="Where catalog presets are converted.")
@_check_options
@_clear_errors
def convert_command(source, output, dtype, check, as_json, name, push, dry_run, workdir, check_options):
    """Convert SOURCE into a preset, then verify it.

    SOURCE is a local HF checkpoint directory or hf://org/repo[@revision] (give -o),
    or a catalog preset or family such as gpt2 (converted under --workdir; --push publishes).
    """
    if _is_catalog_source(source):
        _refuse_check_options(check_options, "catalog presets are checked with the default probes")
        sys.exit(_convert_catalog(source, dtype, push, dry_run, workdir, as_json))
    if push or dry_run:
        raise PresetforgeError("--push and --dry-run apply to catalog presets and families (see `presetforge list`)")
    if output is None:
        raise PresetforgeError("give the preset directory to write with -o/--output")
    checkpoint, repo_id, revision = _upstream(source)
    result = _convert(checkpoint, output, dtype, not as_json, source_repo=repo_id, revision=revision)
    if not as_json:
        out.print(
            f"converted {result.backbone_class} ({result.parameter_count:,} parameters, {result.tensor_count} tensors, "
            f"{result.dtype}) into {result.output}"
        )
    if not check:
        advice = ": --no-check given; run `presetforge check` before publishing"
        out.print(Text.assemble(("not verified", "yellow"), advice))
        sys.exit(EXIT_OK)
    sys.exit(run_check(result.output, checkpoint, write=True, as_json=as_json, name=name, check_options=check_options))


def _convert_catalog(family, dtype, push, dry_run, workdir, as_json):
    from presetforge.pipeline import push as push_lib
    from presetforge.registry import catalog

    names = push_lib.names_for(family)
    if push and not dry_run:
        problem = push_lib.credentials_problem(names)
        if problem:
            raise PresetforgeError(problem)
    results = []
    for name in names:
        if not as_json and not dry_run:
            out.print(Text.assemble((name, "bold"), f" from {push_lib.upstream_handle(name)}"))
        with _progress(not as_json and not dry_run) as progress:
            task = progress.add_task(name, total=None, tensor="")
            advance = lambda done, total, tensor: progress.update(task, completed=done, total=total, tensor=tensor)
            results.append(push_lib.push_one(name, workdir, dtype, push=push, dry_run=dry_run, progress=advance))
    ok = {"published", "verified", "planned"}
    if as_json:
        click.echo(json.dumps([dataclasses.asdict(r) for r in results], indent=2))
    else:
        table = Table(title=f"{family}: {'plan' if dry_run else 'push' if push else 'convert'}", title_justify="left")
        for column in ("preset", "upstream", "status", "worst max abs", "targets"):
            table.add_column(column)
        for r in results:
            targets = "\n".join(
                f"{o.status}: {o.handle or o.target}" for o in r.outcomes
            ) or "\n".join(catalog.entry(r.name)["targets"] if push or dry_run else [])
            style = "green" if r.status in ok else "bold red"
            worst = f"{r.worst_max_abs:.1e}" if r.worst_max_abs is not None else ""
            status = Text.assemble((r.status, style), f": {r.error}" if r.error else "")
            table.add_row(r.name, push_lib.upstream_handle(r.name), status, worst, targets)
        out.print(table)
    return EXIT_OK if all(r.status in ok for r in results) else EXIT_PARITY_FAILED


@main.command("check")
@click.argument("preset", required=False)
@click.option("--reference", help="Upstream HF checkpoint (directory or hf://); catalog presets default to their pin.")
@click.option("--write/--no-write", default=True, show_default=True,
              help="Store the report in the preset (local directories only).")
@click.option("--json", "as_json", is_flag=True, help="Print the full report (with --all: the records) as JSON.")
@click.option("--name", help="The preset's catalog name, for the model card written with the report.")
@click.option("--all", "every", is_flag=True, help="Every catalog preset with a pinned publication: the nightly check.")
@click.option("--family", help="With --all: only this family (or one catalog preset).")
@click.option("--report-dir", type=click.Path(path_type=Path),
              help="With --all: where each preset's report goes (a directory per preset)  [default: out/nightly]")
@click.option("--previous", type=click.Path(path_type=Path),
              help="With --all: the previous night's report dir, for drift (default: what --report-dir holds).")
@_check_options
@_clear_errors
def check_command(preset, reference, write, as_json, name, every, family, report_dir, previous, check_options):
    """Check PRESET against its upstream reference, layer by layer.

    PRESET is a preset directory, or a catalog preset or family (its published presets
    against their pinned upstream). `presetforge check --all` is the nightly job: every
    published preset, one report each under --report-dir, drift noticed; exit 1 on any failure.
    """
    if every:
        if preset or reference:
            raise PresetforgeError("check --all takes no PRESET and no --reference; narrow it with --family")
        _refuse_check_options(check_options, "published presets are checked with the default probes")
        sys.exit(_check_all(family, report_dir or Path("out/nightly"), previous, as_json))
    if family or report_dir or previous:
        raise PresetforgeError("--family, --report-dir and --previous go with --all")
    if preset is None:
        raise PresetforgeError("give a PRESET to check, or --all")
    if reference is None and _is_catalog_source(preset):
        _refuse_check_options(check_options, "published presets are checked with the default probes")
        sys.exit(_check_published(preset, as_json))
    if reference is None:
        raise PresetforgeError("give the upstream checkpoint with --reference")
    sys.exit(run_check(Path(preset), _local_checkpoint(reference), write=write, as_json=as_json, name=name,
                       check_options=check_options))


def _check_published(family, as_json):
    from presetforge.pipeline import push as push_lib

    reports = {name: push_lib.check_published(name) for name in push_lib.names_for(family)}
    if as_json:
        click.echo(json.dumps({n: r.to_json() if r else None for n, r in reports.items()}, indent=2, sort_keys=True))
    else:
        table = Table(title=f"{family}: parity of published presets", title_justify="left")
        for column in ("preset", "verdict", "worst err", "diverges at", "tokenizer"):
            table.add_column(column, no_wrap=True)
        for name, r in reports.items():
            if r is None:
                table.add_row(name, Text("unpublished", style="dim"), "", "", "")
                continue
            verdict = Text("passed", style="green") if r.passed else Text("FAILED", style="bold red")
            table.add_row(name, verdict, f"{r.worst_max_abs:.1e}", r.first_failing_stage or "", r.summary()["tokenizer"])
        out.print(table)
    return EXIT_OK if all(r is None or r.passed for r in reports.values()) else EXIT_PARITY_FAILED


def _check_all(family, report_dir, previous, as_json):
    from presetforge.pipeline import nightly

    def progress(index, total, name, step):
        err.print(Text.assemble((f"[{index}/{total}] {name}", "bold"), f": {step}"), highlight=False)

    records = nightly.check_all(report_dir, family=family, previous_dir=previous, progress=progress)
    counts = {status: sum(r["status"] == status for r in records) for status in nightly.STATUSES}
    failed = counts["fail"] + counts["error"]
    if as_json:
        summary = {"report_dir": str(report_dir), "counts": counts, "passed": not failed, "presets": records}
        click.echo(json.dumps(summary, indent=2, sort_keys=True))
        return EXIT_PARITY_FAILED if failed else EXIT_OK
    if not records:
        out.print(f"no published preset to check{f' in {family}' if family else ''}: the catalog pins none")
        return EXIT_OK
    table = Table(title="nightly parity of published presets", title_justify="left")
    for column in ("preset", "status", "worst err / limit", "top-1", "tokenizer", "upstream commit"):
        table.add_column(column, no_wrap=True)
    styles = {"fail": "bold red", "error": "bold red", "drift": "bold yellow", "pass": "green"}
    for r in records:
        s = r["summary"] or {}
        ratio = f"{s['worst_ratio']:.2g}x ({s['worst_stage']})" if s else ""
        top1 = f"{s['top1_agree']}/{s['top1_positions']}" if s.get("top1_positions") is not None else ""
        table.add_row(r["preset"], Text(r["status"], style=styles[r["status"]]), ratio, top1,
                      s.get("tokenizer", ""), r["versions"]["upstream"].rpartition("@")[2][:12])
    out.print(table)
    for r in records:
        if r["status"] in nightly.FAILING:
            out.print(Text.assemble(("FAILED" if r["status"] == "fail" else "ERROR", "bold red"),
                                    f" {r['preset']}: {r['problem']}"))
        for notice in r["drift"]:
            out.print(Text.assemble(("DRIFT", "bold yellow"), f" {r['preset']}: {notice}"))
    out.print(f"{len(records)} checked: {counts['fail']} failed, {counts['error']} could not be checked, "
              f"{counts['drift']} drifted, {counts['pass']} passed; reports in {report_dir}")
    return EXIT_PARITY_FAILED if failed else EXIT_OK


@main.command("dashboard")
@click.argument("report_dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="The site directory to write.")
@_clear_errors
def dashboard_command(report_dirs, output):
    """Build a static site from the nightly reports in REPORT_DIRS (one per night, any order).

    One row per preset, failed and drifted first; a page per preset with its per-layer plot;
    with several nights, a trend of each preset's worst error against its limit.
    """
    from presetforge.pipeline import dashboard

    records = dashboard.build(report_dirs, output)
    bad = sum(r["status"] in ("fail", "error") for r in records)
    out.print(f"dashboard of {len(records)} presets ({bad} failed or not checked) in {output / 'index.html'}")


@main.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the catalog as JSON.")
@_clear_errors
def list_command(as_json):
    """List the built-in presets of the catalog and where they are published."""
    from presetforge.registry import catalog

    entries = catalog.entries()
    if as_json:
        click.echo(json.dumps(entries, indent=2))
        return
    table = Table(title="presetforge catalog", title_justify="left")
    table.add_column("preset", no_wrap=True)
    table.add_column("family")
    table.add_column("parameters", justify="right")
    table.add_column("upstream", overflow="fold")
    table.add_column("published", overflow="fold")
    for name, e in entries.items():
        published = "\n".join(p["handle"] for p in e["published"]) or Text("not yet", style="dim")
        upstream = e["source"]["handle"] + (f"@{e['source']['revision']}" if e["source"].get("revision") else "")
        table.add_row(name, e["family"], f"{e['parameter_count']:,}", upstream, published)
    out.print(table)


@main.command("publish")
@click.argument("preset", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--to", "targets", multiple=True, required=True,
              help="hf://org/name, kaggle://owner/model/keras/variation, or a local registry directory.")
@click.option("--name", help="The preset's name (default: the directory's name); catalog names get catalog data.")
@click.option("--license", "license_id", help="License id for the hubs (default: the catalog's, else 'other').")
@click.option("--dry-run", is_flag=True, help="Check everything, upload nothing.")
@click.option("--record", is_flag=True, help="Record confirmed hub publications in the catalog.")
@_clear_errors
def publish_command(preset, targets, name, license_id, dry_run, record):
    """Publish a verified PRESET to every --to target; unverified presets are refused."""
    from presetforge.pipeline import publish

    outcomes = publish.publish(preset, targets, name=name, license_id=license_id, dry_run=dry_run, record=record)
    for o in outcomes:
        colour = "red" if o.status == "failed" else "green"
        handle = f" -> {o.handle}" if o.handle else ""
        error = f": {o.error}" if o.error else ""
        out.print(Text.assemble((o.status, colour), f" {o.target}{handle}{error}"))
    sys.exit(EXIT_PARITY_FAILED if any(o.status == "failed" for o in outcomes) else EXIT_OK)


@main.command("demo")
@click.option("--workdir", type=click.Path(path_type=Path), default=Path("out"), show_default=True)
@_clear_errors
def demo_command(workdir):
    """Offline demo: convert the real all-MiniLM-L6-v2, verify it, publish it into the local
    registry (PRESETFORGE_REGISTRY), load it back by name, compare sentences.

    The name loads the local copy because the catalog has not pinned all_minilm_l6_v2_en to a
    hub publication yet: an unpinned catalog name means what was last published into the
    user's own registry (at the catalog's architecture and size). Once pinned, the name loads
    only the pinned manifest, and this local copy only if it is that very preset."""
    from presetforge import demo
    from presetforge.backbones import Backbone
    from presetforge.pipeline import publish
    from presetforge.registry import local
    from presetforge.tokenizers import Tokenizer

    source = demo.minilm_dir()
    preset_dir = workdir / demo.PRESET_NAME
    if preset_dir.exists():
        shutil.rmtree(preset_dir)
    out.print(Text.assemble(("1/3 convert", "bold"), f" {source} -> {preset_dir}"))
    result = _convert(source, preset_dir, "float32", show_progress=True)
    out.print(f"converted {result.backbone_class}, {result.parameter_count:,} parameters")
    out.print(Text.assemble(("2/3 parity gate", "bold"), " against transformers (float32, eager attention)"))
    code = run_check(result.output, source, write=True, as_json=False, name=demo.PRESET_NAME)
    if code:
        sys.exit(code)
    registry = local.default_root()
    (outcome,) = publish.publish(preset_dir, [str(registry)], name=demo.PRESET_NAME)
    where = f" {outcome.status} in the local registry: {outcome.handle}"
    out.print(Text.assemble(("3/3 publish, load and use", "bold"), where))
    backbone = Backbone.from_preset(demo.PRESET_NAME)
    tokenizer = Tokenizer.from_preset(demo.PRESET_NAME)
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
