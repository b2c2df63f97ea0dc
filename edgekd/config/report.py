"""The `[report]` recipe section: which report files are written, and which verdicts fail a strict run."""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import Field, field_validator

from edgekd.config.base import StrictModel, did_you_mean

#: Outcome verdicts (edgekd.verdicts computes them; one function per code there).
VerdictCode = Literal[
    "teacher_below_scratch",
    "kd_below_scratch",
    "student_keeps_little",
    "int8_slower_than_fp32",
    "int8_agreement_near_gate",
    "energy_unavailable",
    "accelerator_fallback",
    "fitnets_cross_family",
]


class ReportConfig(StrictModel):
    html: bool = Field(True, description="write report.html (plots embedded as data: URIs, nothing loaded remotely)")
    markdown: bool = Field(True, description="write report.md (GitHub-flavoured Markdown for a pull-request comment)")
    history: bool = Field(
        True,
        description="record the run and its bench results in the SQLite history "
        "($EDGEKD_HISTORY, else ~/.local/share/edgekd/history.sqlite)",
    )
    plot_format: Literal["svg", "png"] = Field(
        "svg", description="how plots are embedded in report.html (both as data: URIs)"
    )
    strict: bool | list[VerdictCode] = Field(
        False,
        description="outcome verdicts that make `edgekd run` fail (for CI): true = every verdict of "
        "severity 'warning' (not the 'info' energy_unavailable), or a list of verdict codes "
        "(teacher_below_scratch, kd_below_scratch, student_keeps_little, int8_slower_than_fp32, "
        "int8_agreement_near_gate, energy_unavailable, accelerator_fallback, fitnets_cross_family); false = verdicts "
        "are only reported",
    )

    @field_validator("strict", mode="before")
    @classmethod
    def _known_codes(cls, value: Any) -> Any:
        """One clear message for a wrong value (a union's errors would name both of its branches)."""
        if isinstance(value, bool):
            return value
        if not isinstance(value, list):
            raise ValueError("must be true, false or a list of verdict codes")  # noqa: TRY004 - pydantic wants ValueError
        codes = get_args(VerdictCode)
        for code in value:
            if code not in codes:
                raise ValueError(
                    f"unknown verdict {code!r}{did_you_mean(code, codes)}; verdict codes are {', '.join(codes)}"
                )
        return value
