"""``dermlab demo`` (``dermlab/commands/demo.py``): its metrics table."""

from __future__ import annotations


def test_the_demo_metrics_table_shows_each_interval_beside_its_metric():
    from rich.console import Console

    from dermlab.commands.demo import metrics_table

    console = Console(width=120, record=True)
    console.print(metrics_table("t", {"auc": 0.75, "auc_ci95": [0.6, 0.9], "ece": 0.125}))
    lines = {line.split("│")[1].strip(): line for line in console.export_text().splitlines() if line.count("│") == 4}
    assert "0.7500" in lines["auc"] and "[0.6000, 0.9000]" in lines["auc"]
    assert "0.1250" in lines["ece"] and "[" not in lines["ece"]  # no interval given: an empty cell
    assert "auc_ci95" not in lines  # the interval is a column, not a row
