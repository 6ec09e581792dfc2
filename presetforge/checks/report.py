"""The parity report: its data, its three renderings (json, md, png), and the verified test.

A report is bound to the digest of the weights it checked, so a preset counts
as verified only while its weights are byte-for-byte those that passed.
"""

import dataclasses
import io

from presetforge import preset
from presetforge.errors import PresetError

REPORT_FILE = "parity.json"
MARKDOWN_FILE = "parity.md"
PLOT_FILE = "parity.png"
REPORT_VERSION = 1


@dataclasses.dataclass
class StageResult:
    """Errors of one stage (embeddings, a block, the final output) against the reference."""

    name: str
    max_abs: float
    mean_abs: float
    max_rel: float
    min_cosine: float
    limit: float
    passed: bool


@dataclasses.dataclass
class TokenizerResult:
    checked: bool
    passed: bool
    texts: int = 0
    mismatches: list = dataclasses.field(default_factory=list)
    reason: str = ""


@dataclasses.dataclass
class ParityReport:
    dtype: str
    weights_sha256: str
    tolerance: dict
    reference: dict
    inputs: dict
    stages: list
    tokenizer: TokenizerResult
    created: str

    @property
    def first_failing_stage(self):
        return next((s.name for s in self.stages if not s.passed), None)

    @property
    def passed(self):
        stages_ok = all(s.passed for s in self.stages)
        return stages_ok and (self.tokenizer.passed or not self.tokenizer.checked)

    @property
    def worst_max_abs(self):
        return max(s.max_abs for s in self.stages)

    def summary(self):
        """The few numbers that travel with the preset (metadata, model cards, CLI)."""
        return {
            "passed": self.passed,
            "dtype": self.dtype,
            "weights_sha256": self.weights_sha256,
            "stages": len(self.stages),
            "worst_max_abs": self.worst_max_abs,
            "min_cosine": min(s.min_cosine for s in self.stages),
            "first_failing_stage": self.first_failing_stage,
            "tokenizer": "identical" if self.tokenizer.passed and self.tokenizer.checked else (
                "not checked" if not self.tokenizer.checked else "MISMATCH"
            ),
        }

    def to_json(self):
        data = dataclasses.asdict(self)
        data.update(format_version=REPORT_VERSION, passed=self.passed, first_failing_stage=self.first_failing_stage)
        return data

    @classmethod
    def from_json(cls, data):
        fields = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in fields}
        kwargs["stages"] = [StageResult(**s) for s in data["stages"]]
        kwargs["tokenizer"] = TokenizerResult(**data["tokenizer"])
        return cls(**kwargs)

    def stage_table(self):
        """The per-stage errors as a Markdown table."""
        rows = ["| stage | max abs | mean abs | max rel | min cosine | limit | ok |", "|---|---|---|---|---|---|---|"]
        for s in self.stages:
            rows.append(
                f"| {s.name} | {s.max_abs:.3e} | {s.mean_abs:.3e} | {s.max_rel:.3e} | {s.min_cosine:.7f} "
                f"| {s.limit:.1e} | {'yes' if s.passed else '**NO**'} |"
            )
        return "\n".join(rows)

    def to_markdown(self):
        verdict = "PASSED" if self.passed else f"FAILED (first diverging stage: {self.first_failing_stage or 'tokenizer'})"
        lines = [
            f"# Parity report: {verdict}",
            "",
            f"Reference: {self.reference.get('implementation')} {self.reference.get('transformers_version')}, "
            f"float32, eager attention, upstream `{self.reference.get('source') or 'a local checkpoint'}`.",
            f"Preset dtype: {self.dtype}; weights sha256 `{self.weights_sha256}`.",
            f"Inputs: {self.inputs.get('batch')} sequences, lengths {self.inputs.get('lengths')} (padding excluded), "
            f"seed {self.inputs.get('seed')}.",
            "",
            self.stage_table(),
        ]
        tok = self.tokenizer
        lines += ["", "Tokenizer: " + (
            f"identical ids on {tok.texts} texts." if tok.checked and tok.passed else
            f"{len(tok.mismatches)} of {tok.texts} texts differ: {tok.mismatches[:3]}" if tok.checked else
            f"not checked ({tok.reason})."
        ), ""]
        return "\n".join(lines)

    def to_png(self):
        """A log-scale plot of each stage's max abs error against its limit, as PNG bytes."""
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot as plt

        names = [s.name for s in self.stages]
        fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(names) + 2), 3.6), dpi=100)
        ax.semilogy(names, [max(s.max_abs, 1e-12) for s in self.stages], "o-", label="max abs error")
        ax.semilogy(names, [s.limit for s in self.stages], "--", color="tab:red", label="limit")
        for s in self.stages:
            if not s.passed:
                ax.semilogy([s.name], [max(s.max_abs, 1e-12)], "x", color="tab:red", markersize=10)
        ax.set_title(f"parity vs reference ({self.dtype}): {'passed' if self.passed else 'FAILED'}")
        ax.tick_params(axis="x", rotation=60, labelsize=8)
        ax.legend(loc="upper left", fontsize=8)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        plt.close(fig)
        return buffer.getvalue()


def write(root, report):
    """Add the report's three files to the preset and its summary to ``metadata.json``."""
    metadata = preset.read_json(root, preset.METADATA_FILE)
    metadata["parity"] = report.summary()
    with preset.writing(root) as stage:
        preset.write_json(stage.file(REPORT_FILE), report.to_json())
        stage.file(MARKDOWN_FILE).write_text(report.to_markdown(), encoding="utf-8")
        stage.file(PLOT_FILE).write_bytes(report.to_png())
        preset.write_json(stage.file(preset.METADATA_FILE), metadata)


def load(root):
    """The preset's parity report, or ``None`` when it has none."""
    if not (root / REPORT_FILE).is_file():
        return None
    return ParityReport.from_json(preset.read_json(root, REPORT_FILE))


def verification_problem(root):
    """Why the preset at ``root`` is not verified, or ``None`` when it is.

    Verified means: the files match the manifest, a parity report exists, it
    passed, and it was made for exactly the weights present.
    """
    try:
        preset.verify(root)
        report = load(root)
    except PresetError as e:
        return str(e)
    if report is None:
        return "it has no parity report (parity.json); run `presetforge check` first"
    if not report.passed:
        return f"its parity check failed (first diverging stage: {report.first_failing_stage or 'tokenizer'})"
    if report.weights_sha256 != preset.weights_digest(root):
        return "its parity report was made for other weights than those present"
    return None
