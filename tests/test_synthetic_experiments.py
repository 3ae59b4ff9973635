"""The Fig 3 bookkeeping of flexae.experiments.synthetic: which orderings hold on every seed and
from which evaluation on, the rows' configs, and the CLI defaults (no training here; the CLI test
`test_reproduce_fig3_tiny` trains tiny runs end to end)."""

import pytest

from flexae import cli
from flexae.experiments import synthetic
from flexae.experiments.synthetic import FIG3, _beats, _orderings, _run_config, _stable_from
from flexae.plots import _extent, _limits


def _curves(**fds):
    """curves[model] = one dict per seed; fds[model] = list (seeds) of FD lists (evaluations)."""
    return {m: [{"step": [10 * i for i in range(len(f))], "fd": f, "w_latent": [1.0] * len(f)} for f in runs]
            for m, runs in fds.items()}


def test_stable_from_is_the_first_step_after_which_the_ordering_always_holds():
    curves = _curves(flexae=[[5, 4, 3, 2], [5, 9, 3, 2]], wae=[[6, 6, 6, 6], [4, 6, 6, 6]])
    # seed 1 breaks it at step 0 (5 > 4) and step 10 (9 > 6); from step 20 on both seeds agree.
    assert _stable_from(curves, "flexae", "wae") == 20
    # An ordering that fails at the last evaluation is not stable, whatever came before.
    assert _stable_from(_curves(a=[[1, 1, 1, 9]], b=[[2, 2, 2, 2]]), "a", "b") is None
    assert _stable_from(_curves(a=[[1, 1, 1, 1]], b=[[2, 2, 2, 2]]), "a", "b") == 0


def test_beats_compares_final_fd_seed_by_seed():
    records = [{"model": "flexae", "seed": 0, "fd": 3.0}, {"model": "wae", "seed": 0, "fd": 5.0},
               {"model": "flexae", "seed": 1, "fd": 7.0}, {"model": "wae", "seed": 1, "fd": 5.0}]
    assert _beats(records, "flexae", "wae") == [True, False]
    table = _orderings(records, _curves(flexae=[[4, 3], [4, 7]], wae=[[5, 5], [5, 5]]), ("wae", "flexae"))
    assert "| flexae < wae | 1 / 2 | - |" in table


def test_fig3_rows_differ_only_in_their_model_config():
    base = _run_config(FIG3, "wae-gmm", 3, 100, "cpu").to_dict()
    oracle = _run_config(FIG3, "wae-gmm-supplement", 3, 100, "cpu").to_dict()
    assert oracle["model"]["gmm_layout"] == "supplement" and base["model"]["gmm_layout"] == "circle"
    oracle["model"]["gmm_layout"] = "circle"
    assert oracle == base
    # Evaluations every steps // FIG3_EVALS iterations give the convergence curve of one run.
    assert base["train"]["eval_every"] == 100 // synthetic.FIG3_EVALS


def test_cli_defaults_are_the_experiment_defaults():
    assert (cli.FIG3_DEFAULT_STEPS, cli.FIG3_DEFAULT_SEEDS) == (synthetic.FIG3_STEPS, synthetic.FIG3_SEEDS)


def test_reproduce_fig3_refuses_an_unknown_row(tmp_path):
    with pytest.raises(Exception, match="unknown Fig 3 row"):
        synthetic.reproduce_fig3(tmp_path, seeds=1, steps=1, models=("wae-gmm-typo",))


def test_scatter_limits_cover_codes_and_prior_on_each_axis():
    import numpy as np

    rng = np.random.default_rng(0)
    codes = rng.normal(0, 1, (2000, 2)) * [20, 1] + [0, 30]  # wide in x, far away in y
    prior = rng.normal(0, 1, (2000, 2))
    (x0, x1), (y0, y1) = _limits(codes, prior)
    assert x0 < -40 and x1 > 40 and y0 < -2 and y1 > 31
    assert _extent(prior).startswith("[-2.") and "x [-2." in _extent(prior)
