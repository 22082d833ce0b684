"""A short soak: ``bench/soak.py`` for 60 s (10 minutes in the long form) at half the measured maximum ingest rate
with the scheduler busy: no errors, every acknowledged row stored once, and the server's memory bounded."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from reliability.harness import LONG, PYTHON, RESULTS_DIR, ROOT, Figures


class TestSoak:
    @pytest.mark.timeout(1200 if LONG else 400)
    def test_sustained_ingest_has_no_errors_and_bounded_memory(
        self, database_factory: Callable[[], str], figures: Figures, long_form: bool, tmp_path: Path
    ) -> None:
        """Half the measured maximum, held with paced batches while rollups, KPIs, retention, partition upkeep
        and host metrics run every few seconds: no failed request, no traceback, no failed job, acked == stored,
        and the server's RSS does not grow over the second half beyond the limit."""
        duration_s = 600 if long_form else 60
        result_path = tmp_path / "soak.json"
        done = subprocess.run(
            [PYTHON, str(ROOT / "bench" / "soak.py"), "--duration", str(duration_s), "--measure-s", "5", "--database-url", database_factory(),
             "--json", str(result_path)],
            cwd=ROOT, env={k: v for k, v in os.environ.items() if k != "DATABASE_URL"},
            capture_output=True, text=True, timeout=duration_s + 300, check=False,
        )  # fmt: skip
        for line in done.stdout.splitlines():
            figures.line(line)
        assert result_path.exists(), f"the soak did not finish ({done.returncode}):\n{done.stdout}\n{done.stderr[-3000:]}"
        result = json.loads(result_path.read_text())
        RESULTS_DIR.mkdir(exist_ok=True)
        (RESULTS_DIR / "soak.json").write_text(json.dumps(result, indent=2))

        assert result["errors"] == 0, result["error_kinds"]
        assert result["server_tracebacks"] == 0 and result["scheduler_failures"] == 0
        assert result["stored_ok"], "acked rows and stored rows differ"
        assert not result["growing"], f"the server's memory grew {result['second_half_growth_mb']} MB over the second half"
        assert (
            result["acked_rows"] > 0
            and result["scheduler_runs"]["rollups"] >= 1
            and result["scheduler_runs"]["host metrics"] >= 1
        )
        assert done.returncode == 0
