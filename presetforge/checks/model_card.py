"""What a published preset says about itself: the HF model card and Kaggle version notes.

Both are made only from the preset's own metadata and parity report, so the
same preset always gets the same card and re-publishing stays a no-op.
"""

from presetforge import preset
from presetforge.checks import report as report_lib

CARD_FILE = "README.md"


def version_notes(root):
    """One paragraph for a Kaggle version: parity summary and identity."""
    report = report_lib.load(root)
    metadata = preset.read_json(root, preset.METADATA_FILE)
    source = metadata.get("source", {})
    return (
        f"Converted by presetforge {metadata.get('presetforge_version')} from "
        f"{source.get('repo_id') or 'a local checkpoint'}"
        f"{'@' + source['revision'] if source.get('revision') else ''}. "
        f"Parity {'verified' if report.passed else 'FAILED'} against {report.reference.get('implementation')} "
        f"(float32, eager attention): worst max abs error {report.worst_max_abs:.2e} over "
        f"{len(report.stages)} stages at {report.dtype}; tokenizer {report.summary()['tokenizer']}. "
        f"Weights sha256 {report.weights_sha256}."
    )


def model_card(root, name, license_id, description=""):
    """The Hugging Face ``README.md``: YAML header, then parity table and provenance."""
    report = report_lib.load(root)
    metadata = preset.read_json(root, preset.METADATA_FILE)
    source = metadata.get("source", {})
    header = ["---", "library_name: keras", f"license: {license_id}"]
    if source.get("repo_id"):
        header.append(f"base_model: {source['repo_id']}")
    header += ["tags:", "- presetforge", "- keras", f"- {source.get('model_type', 'model')}", "- parity-verified", "---"]
    files = "\n".join(f"| `{n}` | `{h}` |" for n, h in sorted(source.get("files", {}).items()))
    body = [
        f"# {name}",
        "",
        description or f"A {metadata.get('backbone_class')} preset converted by presetforge.",
        "",
        "```python",
        "from presetforge import Backbone",
        f'backbone = Backbone.from_preset("{name}")',
        "```",
        "",
        "## Parity",
        "",
        version_notes(root),
        "",
        report.stage_table(),
        "",
        "## Provenance",
        "",
        f"- upstream: `{source.get('repo_id')}` revision `{source.get('revision')}`",
        f"- converter: {metadata.get('converter', {}).get('name')} {metadata.get('converter', {}).get('version')}",
        f"- keras {metadata.get('keras_version')}, transformers {metadata.get('transformers_version')}, "
        f"presetforge {metadata.get('presetforge_version')}",
        f"- parameters: {metadata.get('parameter_count'):,}, dtype {metadata.get('dtype')}",
        "",
        "| upstream file | sha256 |",
        "|---|---|",
        files,
        "",
    ]
    return "\n".join(header + [""] + body)
