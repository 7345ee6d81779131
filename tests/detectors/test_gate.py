"""Evaluation gate: every shipped detector with recorded floors must still reach them on the held-out set."""

import pytest

from detectors.evaluation import below_floors, evaluate, heldout_records, load_floors, measured_floors
from detectors.runtime import SHIPPED, load_detector

FLOORS = {name: entry for name, entry in load_floors().items() if not name.startswith("_")}


def test_every_floor_names_a_shipped_detector():
    assert FLOORS, "detectors/floors.json records no floors"
    for name in FLOORS:
        assert (SHIPPED / name / "manifest.json").is_file(), f"floors for {name}, which is not shipped"


@pytest.mark.parametrize("name", sorted(FLOORS))
def test_shipped_detector_meets_its_floors(name):
    entry = FLOORS[name]
    try:
        records = heldout_records(entry.get("max_per_label"))
    except FileNotFoundError:
        pytest.skip("shared detector corpus not available (set SYNTHWEB_SHARED)")
    detector = load_detector(str(SHIPPED / name))
    assert detector.version == entry["version"], (
        f"{name} is now v{detector.version}, floors are for v{entry['version']}: re-measure with "
        f"`python -m detectors.evaluation --measure {name}`"
    )
    rows = evaluate(records, detector.score([r["text"] for r in records]))
    failures = below_floors(rows, entry["floors"])
    assert not failures, f"{name} fell below its floors:\n" + "\n".join(failures)


def test_gate_catches_a_regression():
    rows = [{"slice": "all", "auroc": 0.80, "tpr@5%fpr": 0.40}, {"slice": "domain=x", "auroc": 0.7, "tpr@5%fpr": 0.1}]
    floors = measured_floors(rows)
    assert floors["all"] == {"auroc": 0.78, "tpr@5%fpr": 0.38}
    assert below_floors(rows, floors) == []
    worse = [{**rows[0], "auroc": 0.77}, rows[1]]
    assert below_floors(worse, floors) == ["all: auroc 0.77 < floor 0.78"]
    assert below_floors(rows[:1], floors) == [
        "domain=x: auroc None < floor 0.68",
        "domain=x: tpr@5%fpr None < floor 0.08",
    ]
