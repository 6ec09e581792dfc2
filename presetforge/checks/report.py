"""The parity report: its data, its renderings (json, md, png, the model card), and the verified test.

A report is bound to the digest of every file that shapes what the preset
computes (``preset.behaviour_digest``: config, weights, tokenizer), so a preset
counts as verified only while those files are byte-for-byte the ones that passed.
"""

import dataclasses
import io
from pathlib import Path

from presetforge import preset
from presetforge.checks import model_card
from presetforge.errors import PresetError

REPORT_FILE, MARKDOWN_FILE, PLOT_FILE = preset.REPORT_FILES
REPORT_VERSION = 3  # 2: bound to every behaviour file; weights section; logits; full-length probe
# 3: each stage fed the reference's input (errors per stage); our model run alone reported as end_to_end


@dataclasses.dataclass
class WeightsResult:
    """What the weight check saw: how much it compared and the first difference, if any."""

    checked: bool
    passed: bool
    variables: int = 0
    elements: int = 0
    first_mismatch: dict | None = None
    config_mismatches: list = dataclasses.field(default_factory=list)
    reason: str = ""

    def describe(self):
        """One line for people: what matched, or the first thing that did not."""
        if not self.checked:
            return f"not checked ({self.reason})"
        if self.config_mismatches:
            m = self.config_mismatches[0]
            return f"config argument '{m['argument']}' is {m['preset']!r}; upstream gives {m['upstream']!r}"
        if self.first_mismatch is not None:
            m = self.first_mismatch
            return (
                f"'{m['variable']}' differs at index {tuple(m['index'])}: stored {m['stored']!r}, "
                f"expected {m['expected']!r}"
            )
        if not self.passed:
            return self.reason
        return f"all {self.elements:,} elements of {self.variables} variables equal the converted upstream values"


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
    # Logits only: positions whose arg-max agrees, of those where the reference's top-2
    # margin exceeds twice the limit; and the closer calls left out.
    top1_agree: int | None = None
    top1_positions: int | None = None
    top1_ambiguous: int | None = None


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
    behaviour_sha256: str
    tolerance: dict
    reference: dict
    inputs: dict
    stages: list  # each stage fed the reference's own input: the error that stage adds (the gate)
    end_to_end: list  # the same stages of our model run alone: the errors as they accumulate (reported)
    weights: WeightsResult
    tokenizer: TokenizerResult
    created: str | None

    @property
    def first_failing_stage(self):
        return next((s.name for s in self.stages if not s.passed), None)

    @property
    def first_failure(self):
        """What failed first, in words (weights, then stages, then tokenizer), or ``None``."""
        if not self.weights.passed:
            return f"weights: {self.weights.describe()}"
        if self.first_failing_stage:
            return f"stage '{self.first_failing_stage}'"
        if self.tokenizer.checked and not self.tokenizer.passed:
            return "tokenizer"
        return None

    @property
    def passed(self):
        stages_ok = all(s.passed for s in self.stages)
        return stages_ok and self.weights.passed and (self.tokenizer.passed or not self.tokenizer.checked)

    @property
    def worst_max_abs(self):
        """The largest error any stage adds on its own."""
        return max(s.max_abs for s in self.stages)

    def summary(self):
        """The few numbers that travel with the preset (metadata, model cards, CLI)."""
        return {
            "passed": self.passed,
            "dtype": self.dtype,
            "behaviour_sha256": self.behaviour_sha256,
            "weights": "identical" if self.weights.passed else "MISMATCH",
            "stages": len(self.stages),
            "worst_max_abs": self.worst_max_abs,
            "end_to_end_max_abs": self.end_to_end[-1].max_abs,
            "min_cosine": min(s.min_cosine for s in self.stages),
            "end_to_end_min_cosine": self.end_to_end[-1].min_cosine,
            "first_failure": self.first_failure,
            "tokenizer": "identical" if self.tokenizer.passed and self.tokenizer.checked else (
                "not checked" if not self.tokenizer.checked else "MISMATCH"
            ),
        }

    def to_json(self):
        data = dataclasses.asdict(self)
        data.update(
            format_version=REPORT_VERSION,
            passed=self.passed,
            first_failing_stage=self.first_failing_stage,
            first_failure=self.first_failure,
        )
        return data

    @classmethod
    def from_json(cls, data):
        """The report ``to_json`` wrote; a report of another format version is a ``PresetError``."""
        if data.get("format_version") != REPORT_VERSION:
            raise PresetError(
                f"its parity report is format {data.get('format_version')}, not {REPORT_VERSION}; "
                "run `presetforge check` again"
            )
        fields = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in fields}
        kwargs["stages"] = [StageResult(**s) for s in data["stages"]]
        kwargs["end_to_end"] = [StageResult(**s) for s in data["end_to_end"]]
        kwargs["weights"] = WeightsResult(**data["weights"])
        kwargs["tokenizer"] = TokenizerResult(**data["tokenizer"])
        return cls(**kwargs)

    def top1_line(self):
        """Logits arg-max agreement in words, or ``None`` for models without an LM head."""
        logits = next((s for s in self.stages if s.top1_positions is not None), None)
        if logits is None:
            return None
        return (
            f"top-1 identical at {logits.top1_agree} of {logits.top1_positions} positions"
            f" ({logits.top1_ambiguous} too close to call at this tolerance)"
        )

    def stage_table(self):
        """The per-stage errors as a Markdown table: each stage on the reference's input (gated),
        then our model run alone, end to end (reported)."""
        rows = [
            "| stage | max abs | mean abs | max rel | min cosine | limit | ok | end to end: max abs | min cosine |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for s, e in zip(self.stages, self.end_to_end, strict=True):
            rows.append(
                f"| {s.name} | {s.max_abs:.3e} | {s.mean_abs:.3e} | {s.max_rel:.3e} | {s.min_cosine:.7f} "
                f"| {s.limit:.1e} | {'yes' if s.passed else '**NO**'} | {e.max_abs:.3e} | {e.min_cosine:.7f} |"
            )
        return "\n".join(rows)

    def to_markdown(self):
        verdict = "PASSED" if self.passed else f"FAILED ({self.first_failure})"
        probes = "; ".join(
            f"{name}: lengths {probe['lengths']}, seed {probe['seed']}"
            for name, probe in self.inputs["probes"].items()
        )
        lines = [
            f"# Parity report: {verdict}",
            "",
            f"Reference: {self.reference.get('implementation')} {self.reference.get('transformers_version')}, "
            f"float32, eager attention, upstream `{self.reference.get('source') or 'a local checkpoint'}`.",
            f"Preset dtype: {self.dtype}; bound to behaviour sha256 `{self.behaviour_sha256}` "
            "(config, weights, tokenizer).",
            f"Weights: {self.weights.describe()}.",
            f"Probes (padding excluded): {probes}.",
            "Each stage is fed the reference's input to it, so its error is its own (the gate); "
            "end to end, our model runs alone and its errors accumulate (reported, not gated).",
            "",
            self.stage_table(),
        ]
        if self.top1_line():
            lines += ["", f"Logits: {self.top1_line()}."]
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
        ax.semilogy(names, [max(s.max_abs, 1e-12) for s in self.stages], "o-", label="max abs error, per stage")
        ax.semilogy(names, [max(s.max_abs, 1e-12) for s in self.end_to_end], ".:", color="tab:gray",
                    label="end to end")
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


def write(root, report, name=None):
    """Add the report's three files and the model card to the preset, and its summary to ``metadata.json``.

    ``name``, the preset's catalog name if it has one, goes into the model card.
    Writing the card here, at check time, means publishing never has to change
    a verified preset.
    """
    metadata = preset.read_json(root, preset.METADATA_FILE)
    metadata["parity"] = report.summary()
    with preset.writing(root) as stage:
        preset.write_json(stage.file(REPORT_FILE), report.to_json())
        stage.file(MARKDOWN_FILE).write_text(report.to_markdown(), encoding="utf-8")
        stage.file(PLOT_FILE).write_bytes(report.to_png())
        preset.write_json(stage.file(preset.METADATA_FILE), metadata)
        stage.file(preset.CARD_FILE).write_text(model_card.render(report, metadata, name), encoding="utf-8")


def load(root):
    """The preset's parity report, or ``None`` when it has none."""
    root = Path(root)
    if not (root / REPORT_FILE).is_file():
        return None
    return ParityReport.from_json(preset.read_json(root, REPORT_FILE))


def verification_problem(root):
    """Why the preset at ``root`` is not verified, or ``None`` when it is.

    Verified means: the files match the manifest, a parity report of the
    current format exists, it passed, it was made for exactly the config,
    weights and tokenizer present, and the model card is there.
    """
    try:
        preset.verify(root)
        report = load(root)
        if report is None:
            return "it has no parity report (parity.json); run `presetforge check` first"
        if not report.passed:
            return f"its parity check failed ({report.first_failure})"
        if report.behaviour_sha256 != preset.behaviour_digest(root):
            return "its parity report was made for other files (config, weights or tokenizer) than those present"
    except PresetError as e:
        return str(e)
    if not (root / preset.CARD_FILE).is_file():
        return f"it has no model card ({preset.CARD_FILE}); run `presetforge check` again"
    return None
