"""skinlib.course: the plumbing the chapter notebooks share."""

import json

import numpy as np
import pandas as pd
import pytest

from skinlib import course
from skinlib.course import interval_verdict, round_robin_sample, write_chapter_json


def test_interval_verdict_follows_where_the_interval_lies():
    assert interval_verdict((0.001, 0.05)) == "helped"
    assert interval_verdict((-0.05, -0.001)) == "hurt"
    assert interval_verdict((-0.01, 0.02)) == "no difference the split can resolve"
    assert interval_verdict([-0.01, 0.0], up="up", down="down", neither="open") == "open"  # 0 inside
    with pytest.raises(ValueError):
        interval_verdict((0.2, 0.1))


def test_round_robin_sample_shows_every_class_before_any_twice():
    frame = pd.DataFrame(
        {"image_id": [f"ISIC_{i:02d}" for i in range(9)], "dx": ["nv"] * 5 + ["mel"] * 3 + ["df"]},
        index=range(100, 109),
    ).sample(frac=1, random_state=1)  # the order of the rows must not matter
    picked = round_robin_sample(frame, 5)
    assert list(picked["dx"]) == ["nv", "mel", "df", "nv", "mel"]
    assert list(picked["image_id"]) == ["ISIC_00", "ISIC_05", "ISIC_08", "ISIC_01", "ISIC_06"]
    assert len(round_robin_sample(frame, 50)) == 9


def test_write_chapter_json_writes_numpy_scalars_as_numbers(tmp_path):
    path = write_chapter_json(tmp_path / "09_x.json", {"gain": np.float32(0.25), "n": 3})
    assert json.loads(path.read_text()) == {"gain": 0.25, "n": 3}
    assert path.read_text().endswith("\n")


def test_the_verdict_paragraph_follows_the_rule_and_never_prints_minus_zero():
    import copy

    from skinlib.workflows.ablation import chosen_row, replacement_verdict

    ablation, battery = course.shipped_result("ablation"), course.shipped_result("shift_battery")
    verdict = replacement_verdict(ablation, battery=battery)
    text = course.verdict_paragraph(ablation, battery)
    assert "Qualifying: **" + ", ".join(verdict["qualify"]) + "**." in text
    if len(verdict["qualify"]) > 1:
        assert f"the rule ships **{chosen_row(ablation, verdict)}**" in text
    assert "-0.000" not in text
    nobody = copy.deepcopy(ablation)
    for row in nobody["rows"]:
        row["val_minus_baseline"]["balanced_accuracy"]["ci95"][0] = -0.01
    assert "No row beats the shipped recipe" in course.verdict_paragraph(nobody, None)
    assert "robustness is not weighed" in course.verdict_paragraph(nobody, None)
