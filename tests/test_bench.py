"""appliance bench on the simulated rig: accuracy against the simulator's ground truth, a 3 × 3 sweep with
tables, plots and saved results, limits restored (also when interrupted), the recommendation applied."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from appliance import bench, cards
from appliance.profile import load_profile
from appliance.sim import physics

from conftest import REPO
from rigutil import running_rig

pytestmark = [pytest.mark.proxy, pytest.mark.shared_rig]


@pytest.fixture(scope="module")
def rig(tmp_path_factory, litellm_bin):
    with running_rig(tmp_path_factory.mktemp("bench-rig"), extra_env=None) as stack:
        yield stack


def test_measured_rate_and_energy_match_the_simulator(rig):
    s = bench.BenchSettings(concurrency=[1, 4], power_w=[250.0], duration_s=6, max_tokens=400, prompt_tokens=32,
                            target="engine", warmup=1, settle_s=0.2)
    run = bench.Bench(rig, s).run()
    assert not run.interrupted and len(run.cells) == 2
    eng = load_profile("alpha").engines[0]
    for cell in run.cells:
        truth = physics.rates(cards.CARDS["4090"], 250.0, 1, eng.model, eng.quantization, None, cell.concurrency,
                              eng.max_num_seqs)
        assert cell.source == "counters"
        assert cell.gen_tps == pytest.approx(truth.aggregate_tok_s, rel=0.05), (cell.concurrency, truth)
        assert cell.power_w == pytest.approx(truth.power_w, rel=0.05), (cell.concurrency, truth)
        assert cell.energy_j == pytest.approx(truth.power_w * cell.window_s, rel=0.05)
        assert cell.tokens_per_joule == pytest.approx(truth.aggregate_tok_s / truth.power_w, rel=0.07)
    assert rig.rig.gpus().read(0).power_limit_w == 300  # alpha's own limit, restored


def test_sweep_3x3_saves_prints_plots_and_restores(rig):
    out = subprocess.run(
        [sys.executable, "-m", "appliance", "bench", "--sim", "--runtime", "process", "--power", "200,300,400",
         "--concurrency", "1,2,4", "--duration", "2", "--max-tokens", "48", "--prompt-tokens", "16",
         "--warmup", "1"], capture_output=True, text=True, cwd=REPO, env=os.environ, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "by power level" in out.stdout and "by concurrency" in out.stdout
    assert "recommendation: at 2 concurrent" in out.stdout
    run = bench.load_run(None)
    assert len(run.cells) == 9 and {c.power_limit_w for c in run.cells} == {200, 300, 400}
    d = bench.bench_dir()
    svg = (d / f"{run.run_id}.svg").read_text()
    assert svg.startswith("<svg") and "Tokens per joule" in svg and "Generation throughput" in svg
    assert (d / f"{run.run_id}.csv").read_text().count("\n") == 10
    data = json.loads((d / f"{run.run_id}.json").read_text())
    assert data["hardware"] == ["NVIDIA GeForce RTX 4090"] and data["versions"]["vllm_pinned"] == "0.19.0"
    assert rig.rig.gpus().read(0).power_limit_w == 300
    # more watts buy more tokens/s in the simulator; the table is ordered by power
    by = {(c.power_limit_w, c.concurrency): c.gen_tps for c in run.cells}
    assert by[(400, 4)] > by[(200, 4)]


def test_interrupted_sweep_restores_limits(rig):
    calls = {"n": 0}

    def stop_after_first_cell():
        calls["n"] += 1
        return calls["n"] > 3  # a few progress ticks into the run

    s = bench.BenchSettings(concurrency=[1, 2], power_w=[200.0, 400.0], duration_s=2, max_tokens=32,
                            prompt_tokens=16, target="engine", warmup=1, settle_s=0.1)
    run = bench.Bench(rig, s, should_stop=stop_after_first_cell).run()
    assert run.interrupted and len(run.cells) < 4
    assert rig.rig.gpus().read(0).power_limit_w == 300
    assert bench.load_run(run.run_id).interrupted


def test_apply_writes_the_recommended_limit(rig, tmp_path):
    # the full sweep of the first test (the interrupted one after it measured too little to recommend)
    run = next(r for r in (bench.load_run(p.stem) for p in reversed(bench.list_runs())) if r.recommendation)
    path = tmp_path / "alpha.yaml"
    src = load_profile("alpha").source_file
    text = open(src).read()
    assert "\npower_limit_w: " in text
    path.write_text(text.replace("\npower_limit_w: 300", "\npower_limit_w: 300   # MY NOTE: quiet at night"))
    watts, _ = bench.apply_recommendation(run, path)
    assert load_profile(path).power_limit_w == int(watts) == int(run.recommendation["power_limit_w"])
    # written as `appliance set` writes: the owner's comment on that very line kept, the old version kept
    assert f"power_limit_w: {int(watts)}   # MY NOTE: quiet at night" in path.read_text()
    assert list((tmp_path / ".history").glob("alpha.*.yaml"))


def test_no_recommendation_from_one_power_limit():
    """A run at the power as it was (no --power) measured one limit: it recommends nothing — applying its "best"
    would overwrite the profile's limit with whatever the card happened to be at (found by a new-user trial)."""
    def cell(w, c, tps, tpj):
        return bench.Cell(w, c, 30, 10, 0, tps, 100, tps / c, tps / c, 0.2, 0.3, 0.02, {"0": w}, w, w * 30, tpj,
                          None, 0.5, "counters")

    one = bench.BenchRun("20261130-0600", 0, "mine", "agent", "m", ["RTX 4090"], {}, {},
                         [cell(250, 1, 60, 0.39), cell(250, 4, 140, 0.5)])
    assert bench.recommend(one) is None
    two = bench.BenchRun("20261130-0601", 0, "mine", "agent", "m", ["RTX 4090"], {}, {},
                         [cell(200, 4, 110, 0.55), cell(300, 4, 140, 0.47)])
    rec = bench.recommend(two)  # 200 W is the most frugal but too slow per request (79 % of the best)
    assert rec["power_limit_w"] == 300 and "of the limits that keep at least 90% of the best speed" in rec["text"]
