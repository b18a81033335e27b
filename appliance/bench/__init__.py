"""`appliance bench`: concurrency × power-limit sweeps, tokens per joule, and a recommendation.

Split by job, one direction of imports (results ← recommendation ← sweep; results ← report):
  sweep.py           BenchSettings and Bench: runs the cells against a running stack, measures, restores limits
  results.py         Cell and BenchRun, saved as JSON + CSV in the state dir; list_runs / load_run
  recommendation.py  the power limit with the best tokens per joule; writing it into the profile
  report.py          tables, the terminal plot, the SVG, the live progress line
Import from `appliance.bench`; the names below are the whole API.
"""

from appliance.bench.recommendation import apply_recommendation, recommend
from appliance.bench.report import ProgressLine, svg_plots, table_by_concurrency, table_by_power, terminal_plot
from appliance.bench.results import BenchRun, Cell, bench_dir, list_runs, load_run, save
from appliance.bench.sweep import Bench, BenchSettings, load_dataset, power_limit_applied

__all__ = [
    "Bench", "BenchRun", "BenchSettings", "Cell", "ProgressLine", "apply_recommendation", "bench_dir",
    "list_runs", "load_dataset", "load_run", "power_limit_applied", "recommend", "save", "svg_plots",
    "table_by_concurrency", "table_by_power", "terminal_plot",
]
