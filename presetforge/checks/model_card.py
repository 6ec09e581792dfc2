"""What a verified preset says about itself: the Hugging Face model card and Kaggle version notes.

Both are made only from the preset's report, metadata and catalog entry, never
from where it lies or when it was checked, so the same preset always gets the
same card. The card is written with the report (``report.write``), so
publishing never changes a verified preset.
"""

from presetforge.registry import catalog


def version_notes(report, metadata):
    """One paragraph for a Kaggle version: parity summary and identity."""
    source = metadata.get("source", {})
    top1 = report.top1_line()
    return (
        f"Converted by presetforge {metadata.get('presetforge_version')} from "
        f"{source.get('repo_id') or 'a local checkpoint'}"
        f"{'@' + source['revision'] if source.get('revision') else ''}. "
        f"Parity {'verified' if report.passed else 'FAILED'} against {report.reference.get('implementation')} "
        f"(float32, eager attention): every weight element {'equals' if report.weights.passed else 'does NOT equal'} "
        f"the converted upstream value; worst max abs error {report.worst_max_abs:.2e} over "
        f"{len(report.stages)} stages at {report.dtype}{'; ' + top1 if top1 else ''}; "
        f"tokenizer {report.summary()['tokenizer']}. Behaviour sha256 {report.behaviour_sha256}."
    )


def render(report, metadata, name=None):
    """The Hugging Face ``README.md``: YAML header, then parity table and provenance.

    ``name`` is the preset's catalog name, when it has one: its license and
    description come from the catalog, and the usage example loads it by name.
    """
    entry = catalog.entry(name) if name else None
    source = metadata.get("source", {})
    header = ["---", "library_name: keras", f"license: {(entry or {}).get('license', 'other')}"]
    if source.get("repo_id"):
        header.append(f"base_model: {source['repo_id']}")
    header += ["tags:", "- presetforge", "- keras", f"- {source.get('model_type', 'model')}", "- parity-verified", "---"]
    files = "\n".join(f"| `{n}` | `{h}` |" for n, h in sorted((source.get("files") or {}).items()))
    title = name or f"{metadata.get('backbone_class')} from {source.get('repo_id') or 'a local checkpoint'}"
    handle = name or "path/to/this/preset"
    body = [
        f"# {title}",
        "",
        (entry or {}).get("description") or f"A {metadata.get('backbone_class')} preset converted by presetforge.",
        "",
        "```python",
        "from presetforge import Backbone",
        f'backbone = Backbone.from_preset("{handle}")',
        "```",
        "",
        "## Parity",
        "",
        version_notes(report, metadata),
        "",
        report.stage_table(),
        "",
        "## Provenance",
        "",
        f"- upstream: `{source.get('repo_id')}` revision `{source.get('revision')}`",
        f"- converter: {metadata.get('converter', {}).get('name')} {metadata.get('converter', {}).get('version')}",
        f"- keras {metadata.get('keras_version')}, checked against transformers {report.reference.get('transformers_version')}, "
        f"presetforge {metadata.get('presetforge_version')}",
        f"- parameters: {metadata.get('parameter_count'):,}, dtype {metadata.get('dtype')}",
        "",
        "| upstream file | sha256 |",
        "|---|---|",
        files,
        "",
    ]
    return "\n".join(header + [""] + body)
