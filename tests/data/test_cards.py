"""The dataset cards in data/ agree with the class tables in heal_swin/data/classes.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from heal_swin.data.classes import (
    SYNWOODSCAPE_CLASSES,
    WOODSCAPE_CLASSES,
    synwoodscape_table,
    table_from_card,
)

yaml = pytest.importorskip("yaml")
DATA = Path(__file__).resolve().parents[2] / "data"


@pytest.mark.parametrize("card, table", [("woodscape.yaml", WOODSCAPE_CLASSES), ("synthetic.yaml", WOODSCAPE_CLASSES),
                                         ("synwoodscape.yaml", SYNWOODSCAPE_CLASSES)])  # fmt: skip
def test_card_classes_match(card, table):
    d = yaml.safe_load((DATA / card).read_text())
    t = table_from_card(d)
    assert t.names == table.names and t.colors_bgr == table.colors_bgr


def test_synwoodscape_card_merges_match():
    d = yaml.safe_load((DATA / "synwoodscape.yaml").read_text())
    for variant, m in d["merges"].items():
        t = synwoodscape_table(variant)
        assert tuple(c["name"] for c in m["classes"]) == t.names
        assert {int(k): v for k, v in m["raw_to_class"].items()} == dict(t.raw_to_class)
