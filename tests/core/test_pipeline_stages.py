"""The stage list is declared once (edgekd.stages.STAGE_NAMES); every other list of stages derives from it."""

from __future__ import annotations

import pytest

from edgekd.report.failures import STAGE_ORDER
from edgekd.stages import STAGE_NAMES, default_stages, in_pipeline_order, stage_span
from edgekd.stages.delivery import MODEL_STAGES
from edgekd.sweep.shared import SHARED_STAGES
from edgekd.sweep.trial import CONVERT, FINISH, TRAIN


def test_every_list_of_stages_follows_the_one_declaration() -> None:
    assert [stage.name for stage in default_stages()] == list(STAGE_NAMES)
    assert (*TRAIN, *CONVERT, "bench", *FINISH) == STAGE_NAMES  # a sweep trial's steps cover the pipeline once
    assert STAGE_ORDER == STAGE_NAMES[:-1] and STAGE_NAMES[-1] == "report"
    for derived in (MODEL_STAGES, SHARED_STAGES):
        assert list(derived) == [name for name in STAGE_NAMES if name in derived]


def test_a_name_that_is_not_a_stage_is_a_bug_not_a_silent_skip() -> None:
    assert in_pipeline_order({"verify", "data"}) == ("data", "verify")
    assert stage_span("export", "tflite") == ("export", "calibrate", "quantize", "tflite")
    with pytest.raises(ValueError, match="not pipeline stages: exprot"):
        in_pipeline_order({"exprot"})
