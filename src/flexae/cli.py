"""The `flexae` command line. Every error a user can fix is printed on one line, exit code 2."""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
import threading
import warnings
from pathlib import Path


def _interrupted_at_start_up(signum, frame) -> None:
    """Ctrl-C while the imports below (torch: seconds) run: one line and 130, not a traceback."""
    sys.stderr.write("flexae: interrupted during start-up\n")
    sys.stderr.flush()
    os._exit(128 + signal.SIGINT)


# Only where Ctrl-C would raise a bare KeyboardInterrupt (the default handler), and only until this
# module is imported; `main` and the training loop handle it from then on.
_START_UP_SIGINT = (threading.current_thread() is threading.main_thread()
                    and signal.getsignal(signal.SIGINT) is signal.default_int_handler)
if _START_UP_SIGINT:
    signal.signal(signal.SIGINT, _interrupted_at_start_up)

import click  # noqa: E402
from click.core import ParameterSource  # noqa: E402

from flexae.config import CUDA_GRAPHS, INCEPTION_BATCH_SIZE, INCEPTION_MODES, PRECISIONS, PRIOR_KINDS, ModelConfig, RunConfig, TrainConfig  # noqa: E402
from flexae.data import DATASETS, IMAGES, OWN_CHOICES  # noqa: E402  (names only: neither imports torch)
from flexae.errors import UserError  # noqa: E402
from flexae.registry import BASELINE_NAMES, MODELS, PAPER_MODELS  # noqa: E402
from flexae.training.signals import TrainingStopped  # noqa: E402

# Defaults come from the config dataclasses, so the CLI and the Python API never disagree.
_MODEL, _TRAIN = ModelConfig(), TrainConfig()
_DATA_DIR = click.Path()  # --data-dir of every command (a str, as the loaders and configs take it)
_DEVICE_HELP = "auto (cuda if available, else mps, else cpu), cpu, cuda, cuda:N or mps."


def _model_help() -> str:
    """--model's help, from the registry: every model, with the summary it was registered with."""
    def named(name: str) -> str:
        return f"{name} ({MODELS[name].summary})" if MODELS[name].summary else name
    return (f"{', '.join(map(named, PAPER_MODELS))}, or a baseline: {', '.join(map(named, BASELINE_NAMES))} "
            "(docs/baselines.md); or module:Name of your own (docs/architecture.md).")


def _dataset_help(names: tuple[str, ...]) -> str:
    """--dataset's help, from flexae.data's table of data sets."""
    return (f"{', '.join(names)}, or images of your own: {', '.join(OWN_CHOICES)} (PNG/JPEG files; "
            "uint8 N x H x W [x C] arrays); docs/data.md.")


class _NonEmptyPath(click.Path):
    """A path argument or option; '' is refused (as a pathlib.Path it would be the working directory)."""

    def convert(self, value, param, ctx):
        if isinstance(value, str) and not value.strip():
            name = param.opts[0] if param is not None and param.opts and param.opts[0].startswith("-") else \
                (param.name.upper() if param is not None else "path")
            raise UserError(f"{name} is empty (''); give a path")
        return super().convert(value, param, ctx)


_PATH = _NonEmptyPath(path_type=Path)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="flexae")
def cli() -> None:
    """Generative auto-encoders with learned latent priors (FlexAE, FlexAE-SR) and baselines."""


def _apply_override(cfg: RunConfig, item: str) -> None:
    """Apply one `--set section.field=value` (e.g. optim.gen.lr=2e-4) with the field's own type."""
    from flexae.validation import apply_override  # typed by the config's annotations (bool, int | None, ...)

    apply_override(cfg, item)


def _refuse_with_resume(names: tuple[str, ...]) -> None:
    """A resumed run keeps its saved config; a flag that would change it is an error, not ignored."""
    ctx = click.get_current_context()
    for name in names:
        if ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE:
            flag = "--set" if name == "overrides" else "--" + name.replace("_", "-")
            raise UserError(f"{flag} cannot be combined with --resume: a resumed run keeps the config "
                            f"saved in its checkpoint (only --steps, --device, --data-dir and --tensorboard may change)")


def _trust_code_option(f):
    """`--trust-code`: the command may import the network modules ("module:Class") that the runs
    and model files it loads name (flexae.trust); without it such a run is refused with one line."""
    @functools.wraps(f)
    def command(*args, trust_code: bool, **kwargs):
        from flexae.trust import allowing_code
        with allowing_code(trust_code):
            return f(*args, **kwargs)
    return click.option("--trust-code", is_flag=True,
                        help="Allow importing the network code (model.encoder / model.decoder = module:Class) "
                             "that a loaded run or model file names; importing runs its code.")(command)


@cli.command()
@_trust_code_option
@click.option("--model", default=_MODEL.name, show_default=True, help=_model_help())
@click.option("--dataset", default=_TRAIN.dataset, show_default=True, help=_dataset_help(DATASETS))
@click.option("--image-size", type=click.IntRange(min=0), default=0, show_default=True,
              help="Images of your own: resize to this square side (train.image_size); 0: keep their size.")
@click.option("--latent-dim", type=int, default=None,
              help="m; default: the paper's value for the data set (your images: 20 greyscale, 64 colour).")
@click.option("--noise-dim", type=int, default=None, help="m', the prior generator's noise size; default m.")
@click.option("--steps", type=int, default=None, show_default=f"{_TRAIN.steps}, or the run's own with --resume",
              help="Training iterations (total, also with --resume).")
@click.option("--batch-size", type=int, default=_TRAIN.batch_size, show_default=True, help="Images or points per update.")
@click.option("--seed", type=int, default=_TRAIN.seed, show_default=True,
              help="Seed of initialisation, minibatches and noise.")
@click.option("--device", default=_TRAIN.device, show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
@click.option("--precision", type=click.Choice(PRECISIONS), default=_TRAIN.precision, show_default=True,
              help="fp32, bf16 or fp16 (CUDA): encoder/decoder passes in that precision (docs/performance.md).")
@click.option("--out", type=_PATH, default=None, help="Run folder to create.")
@click.option("--overwrite", is_flag=True, help="Replace the files of an existing run folder.")
@click.option("--resume", "resume_dir", type=_PATH, default=None,
              help="Continue the run in this folder from its checkpoint.")
@click.option("--data-dir", type=_DATA_DIR, default=None, help="Folder with the image data files (or $FLEXAE_DATA_DIR).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override any config field, e.g. --set optim.gen.lr=2e-4 --set train.eval_every=100.")
@click.option("--tensorboard", is_flag=True, help="Also write TensorBoard logs to RUN_DIR/tensorboard/.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def train(model, dataset, image_size, latent_dim, noise_dim, steps, batch_size, seed, device, precision, out,
          overwrite, resume_dir, data_dir, overrides, tensorboard, quiet) -> None:
    """Train a model; writes config.json, log.jsonl, checkpoint.pt and metrics.json to --out."""
    from flexae.data import data_source, default_latent_dim
    from flexae.app import train as loop
    from flexae.validation import validate_data_dir, validate_out_dir, validate_resume_dir

    validate_data_dir(data_dir)
    if resume_dir is not None:
        if out is not None and Path(out) != resume_dir:
            raise UserError("give either --out (new run) or --resume (existing run), not both")
        _refuse_with_resume(("model", "dataset", "image_size", "latent_dim", "noise_dim", "batch_size", "seed",
                             "precision", "overwrite", "overrides"))
        validate_resume_dir(resume_dir)
        given = click.get_current_context().get_parameter_source("device") == ParameterSource.COMMANDLINE
        run_dir = loop.resume(resume_dir, steps, data_dir=data_dir, progress=not quiet,
                              device=device if given else None, tensorboard=tensorboard or None)
    else:
        if out is None:
            raise UserError("--out RUN_DIR is required (the folder the run is written to)")
        validate_out_dir(out)
        data_source(dataset)  # the unknown-name error, listing the choices
        if latent_dim is not None and latent_dim <= 0:
            raise UserError(f"--latent-dim must be positive, got {latent_dim}")
        cfg = RunConfig(ModelConfig(name=model, latent_dim=latent_dim or 1, noise_dim=noise_dim),
                        train=TrainConfig(dataset=dataset, steps=steps if steps is not None else _TRAIN.steps,
                                          batch_size=batch_size, seed=seed, device=device, precision=precision,
                                          image_size=image_size))
        cfg.train.tensorboard = tensorboard
        if data_dir is not None:  # recorded, so resume / sample / reconstruct find the files again
            cfg.train.data_dir = str(Path(data_dir).expanduser().resolve())
        for item in overrides:
            _apply_override(cfg, item)
        if latent_dim is None and not any(item.strip().startswith("model.latent_dim=") for item in overrides):
            # after --set, whose train.image_size may decide the images' shape (hence m's default)
            cfg.model.latent_dim = default_latent_dim(cfg.train.dataset, cfg.train.image_size)
        from flexae.validation import check_settings_read, validate_config
        validate_config(cfg)  # values first (their message is the more precise one), then who reads them
        check_settings_read(cfg, overrides)
        run_dir = loop.train(cfg, out, overwrite=overwrite, data_dir=data_dir, progress=not quiet)
    click.echo(f"run written to {run_dir}")


@cli.group()
def reproduce() -> None:
    """Re-run one table or figure of the paper."""


def _launcher_options(f):
    """`--launcher` and its settings (flexae.experiments.launch), shared by the table commands."""
    f = click.option("--submitit-cluster", type=click.Choice(["slurm", "local"]), default=None,
                     help="submitit: its executor; default: SLURM where submitit finds it; local: processes on "
                          "this machine through the same submitit code (to try a sweep).")(f)
    f = click.option("--slurm-array-parallelism", type=int, default=32, show_default=True,
                     help="submitit: jobs of the sweep's job array running at once.")(f)
    f = click.option("--slurm-cpus-per-job", type=int, default=None, help="submitit: CPUs per job (and torch threads).")(f)
    f = click.option("--slurm-gpus-per-job", type=int, default=1, show_default=True, help="submitit: GPUs per job.")(f)
    f = click.option("--slurm-time", type=int, default=240, show_default=True,
                     help="submitit: minutes per job; a job stopped at its limit is requeued and resumes.")(f)
    f = click.option("--slurm-partition", default=None, help="submitit: SLURM partition (default: the cluster's).")(f)
    f = click.option("--devices", default=None, help="local: comma-separated devices, one per worker slot "
                                                   "(cuda:0,cuda:1); default: the CPU, its threads split among the workers.")(f)
    f = click.option("--workers", type=int, default=None,
                     help="local: runs training at once (default: one per --devices entry, else 1).")(f)
    return click.option("--launcher", type=click.Choice(["inline", "local", "submitit"]), default="inline",
                        show_default=True, help="Where the runs train: this process one after another, local "
                                                "worker processes, or SLURM jobs through submitit (docs/usage.md).")(f)


def _launch_settings(launcher, workers, devices, slurm_partition, slurm_time, slurm_gpus_per_job,
                     slurm_cpus_per_job, slurm_array_parallelism, submitit_cluster):
    from flexae.experiments.launch import LaunchSettings
    chosen = _names(devices or "")
    return LaunchSettings(launcher=launcher, workers=workers or max(1, len(chosen)), devices=chosen,
                          slurm_partition=slurm_partition, slurm_time=slurm_time,
                          slurm_gpus_per_job=slurm_gpus_per_job, slurm_cpus_per_job=slurm_cpus_per_job,
                          slurm_array_parallelism=slurm_array_parallelism, submitit_cluster=submitit_cluster)


def _reproduce_options(default_steps: int, default_seeds: int = 1, seeds_help: str = "Seeds 0..K-1 per model."):
    def wrap(f):
        f = click.option("--out", type=_PATH, required=True, help="Output folder.")(f)
        f = click.option("--seeds", type=int, default=default_seeds, show_default=True, help=seeds_help)(f)
        f = click.option("--steps", type=int, default=default_steps, show_default=True,
                         help="Training iterations per run.")(f)
        f = click.option("--device", default="auto", show_default=True, help=_DEVICE_HELP)(f)
        f = click.option("--quiet", is_flag=True, help="No progress bars.")(f)
        return _trust_code_option(_launcher_options(f))
    return wrap


@reproduce.command("fig2")
@_reproduce_options(3000, 1, "Seeds 0..K-1 per model; 1 is a few-minute look with no spread "
                             "(--seeds 5 for a mean ± std over seeds; docs/synthetic.md).")
def fig2(out, seeds, steps, device, quiet, **launcher) -> None:
    """Fig 2: WAE (FlexAE with its prior fixed to N(0, I)) vs FlexAE on synthetic-5d (m = 50):
    latent W1 over training, final FD."""
    from flexae.experiments.synthetic import FIG2_MODELS, reproduce_fig2
    with _runs_notice("reproduce fig2", seeds * len(FIG2_MODELS), "pass --steps N or --seeds K for fewer"):
        click.echo(reproduce_fig2(out, seeds, steps, device, progress=not quiet,
                                  launch=_launch_settings(**launcher)), nl=False)
    click.echo(f"wrote {out / 'fig2.png'} and {out / 'results.json'}")


# The defaults of flexae.experiments.synthetic (FIG3_STEPS, FIG3_SEEDS; a test keeps them equal),
# written out so that `--help` does not import torch.
FIG3_DEFAULT_STEPS, FIG3_DEFAULT_SEEDS = 3000, 5


@reproduce.command("fig3")
@_reproduce_options(FIG3_DEFAULT_STEPS, FIG3_DEFAULT_SEEDS)
def fig3(out, seeds, steps, device, quiet, **launcher) -> None:
    """Fig 3: latent spaces of VAE, WAE-N(0,I) and WAE-GMM (FlexAE with its prior fixed to N(0, I),
    or to a mixture: on a circle, and the data's true latent mixture) and FlexAE on synthetic-2d (m = 2), with FD and latent W1 over training.

    Writes fig3.png (seed 0), fig3_convergence.png, results.md (mean ± std, FD per seed, which
    orderings hold on every seed), results.json, curves.json. Finished runs are reused.
    Run time with the defaults (25 runs of 3000 iterations, one thread each): about 20 min on
    a 2-core AMD EPYC VM when idle (from measured per-iteration times), 45 min measured there
    while other jobs shared the CPU. docs/synthetic.md has the results.
    """
    from flexae.experiments.synthetic import FIG3_MODELS, reproduce_fig3
    with _runs_notice("reproduce fig3", seeds * len(FIG3_MODELS), "pass --steps N or --seeds K for fewer"):
        click.echo(reproduce_fig3(out, seeds, steps, device, progress=not quiet,
                                  launch=_launch_settings(**launcher)), nl=False)
    click.echo(f"wrote {out / 'fig3.png'}, {out / 'fig3_convergence.png'} and {out / 'results.md'}")


def _table_options(f):
    """Options shared by `reproduce table1/table3/table4`."""
    f = _launcher_options(f)
    f = click.option("--quiet", is_flag=True, help="No progress bars.")(f)
    f = click.option("--prior", type=click.Choice(["own", "fitted"]), default="own", show_default=True,
                     help="Evaluate each run with its own prior, or the one `flexae fit-prior` wrote in its "
                          "folder (prior.pt; an error where there is none).")(f)
    f = click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                     help="Override a config field of every run, e.g. --set model.bn_momentum=0.1.")(f)
    f = click.option("--data-dir", type=_DATA_DIR, default=None, help="Folder with the image data files (or $FLEXAE_DATA_DIR).")(f)
    f = click.option("--device", default="auto", show_default=True, help=_DEVICE_HELP)(f)
    f = click.option("--seed", type=int, default=0, show_default=True, help="Training and evaluation seed.")(f)
    f = click.option("--sampler-fit-points", type=int, default=None,
                     help="Training images encoded for the ex-post sampler fits; default: all.")(f)
    f = click.option("--sampler-steps", type=int, default=None,
                     help="Iterations of the ex-post sampler fits (2s-vae, vq-vae); default 5000.")(f)
    f = click.option("--eval-n", type=int, default=10000, show_default=True,
                     help="Test (and generated) images per evaluation; FID needs >= 2048 (smaller: a warning).")(f)
    f = click.option("--steps", type=int, default=130000, show_default=True,
                     help="Training iterations per model (paper: 130,000).")(f)
    f = click.option("--dataset", required=True, help=_dataset_help(IMAGES))(f)
    f = click.option("--out", type=_PATH, required=True,
                     help="Output folder (runs/, eval/, samples/, tables); re-running reuses finished runs.")(f)
    return _trust_code_option(f)


def _table_settings(out, dataset, steps, eval_n, sampler_steps, sampler_fit_points, seed, device, data_dir,
                    overrides, quiet, prior="own", **launcher):
    from flexae.experiments.tables import TableSettings
    return TableSettings(dataset=dataset, steps=steps, out=out, eval_n=eval_n, seed=seed, device=device,
                         data_dir=data_dir, sampler_steps=sampler_steps, sampler_fit_points=sampler_fit_points,
                         overrides=tuple(overrides), progress=not quiet, prior=prior,
                         launch=_launch_settings(**launcher), report=lambda line: click.echo(line, err=True))


_TABLE_SHORTEN = "pass --steps N for fewer iterations per run (and --eval-n N for fewer images per evaluation)"


def _runs_notice(label: str, runs: int, shorten: str):
    """The runs of one command give one note of how long they take (flexae.eta), by the first that trains."""
    from flexae import eta
    return eta.sequence(label, runs, shorten)


def _warn(message: str) -> None:
    click.echo(f"flexae: warning: {message}", err=True)


def _names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


@reproduce.command("table1")
@_table_options
@click.option("--models", default=None, help="Comma-separated models; default: every Table 1 model.")
@click.option("--metrics", default="fid,prd", show_default=True, help="Comma-separated: fid, prd.")
def table1(out, dataset, steps, eval_n, sampler_steps, sampler_fit_points, seed, device, data_dir, overrides, prior,
           quiet, models, metrics, **launcher) -> None:
    """Tables 1 and 2: reconstruction/generation FID and precision/recall of every model, same budget."""
    from flexae.experiments.tables import TABLE1_MODELS, reproduce_table1
    settings = _table_settings(out, dataset, steps, eval_n, sampler_steps, sampler_fit_points, seed, device,
                               data_dir, overrides, quiet, prior, **launcher)
    chosen = _names(models) if models else TABLE1_MODELS
    with _runs_notice("reproduce table1", len(chosen), _TABLE_SHORTEN + " or --models A,B"):
        click.echo(reproduce_table1(settings, chosen, _names(metrics), warn=_warn), nl=False)
    click.echo(f"wrote {out / 'table1.md'}, {out / 'table1.json'} and sample grids in {out / 'samples'}")


@reproduce.command("table3")
@_table_options
def table3(out, dataset, steps, eval_n, sampler_steps, sampler_fit_points, seed, device, data_dir,
           overrides, prior, quiet, **launcher) -> None:
    """Table 3: WAE-GAN, FlexAE with its prior fixed to N(0, I) and FlexAE-SR at latent sizes m_b,
    2 m_b, 4 m_b (rec./gen. FID)."""
    from flexae.experiments.tables import TABLE3_MODELS, reproduce_table3
    settings = _table_settings(out, dataset, steps, eval_n, sampler_steps, sampler_fit_points, seed, device,
                               data_dir, overrides, quiet, prior, **launcher)
    with _runs_notice("reproduce table3", 3 * len(TABLE3_MODELS), _TABLE_SHORTEN):  # latent sizes m_b, 2 m_b, 4 m_b
        click.echo(reproduce_table3(settings, warn=_warn), nl=False)
    click.echo(f"wrote {out / 'table3.md'} and {out / 'table3.json'}")


@reproduce.command("table4")
@_table_options
@click.option("--model", default="flexae-sr", show_default=True, help="The model whose samples are scored.")
def table4(out, dataset, steps, eval_n, sampler_steps, sampler_fit_points, seed, device, data_dir, overrides,
           prior, quiet, model, **launcher) -> None:
    """Table 4: pixel / Inception memorization scores (Tr-Tr, Gen-Tr, Tr-Te, Gen-Te)."""
    from flexae.experiments.tables import reproduce_table4
    settings = _table_settings(out, dataset, steps, eval_n, sampler_steps, sampler_fit_points, seed, device,
                               data_dir, overrides, quiet, prior, **launcher)
    click.echo(reproduce_table4(settings, model, warn=_warn), nl=False)
    click.echo(f"wrote {out / 'table4.md'} and {out / 'table4.json'}")


@cli.command("fit-sampler")
@_trust_code_option
@click.argument("run_dir", type=_PATH)
@click.option("--steps", type=int, default=None, help="Fit iterations (2s-vae, vq-vae); default: the run's config.")
@click.option("--fit-points", type=int, default=None, help="Training images encoded for the fit; 0 = all.")
@click.option("--data-dir", type=_DATA_DIR, default=None, help="Folder with the image data files (or $FLEXAE_DATA_DIR).")
@click.option("--device", default="auto", show_default=True, help=_DEVICE_HELP)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def fit_sampler(run_dir, steps, fit_points, data_dir, device, quiet) -> None:
    """Fit the ex-post sampler of an ae-gmm, rae-gmm, 2s-vae or vq-vae run; writes RUN_DIR/sampler.pt."""
    from flexae.app.fit_sampler import fit_run
    from flexae.runs import layout
    stats = fit_run(run_dir, steps=steps, fit_points=fit_points, data_dir=data_dir, device=device,
                    progress=not quiet)
    click.echo(", ".join(f"{k} {v:.4g}" for k, v in stats.items()))
    click.echo(f"sampler written to {run_dir / layout.SAMPLER_NAME}")


def _prior_kind_options(f):
    """The prior kinds' settings that fit-prior and compare-priors both take (flexae.app.prior_kinds)."""
    options = [
        click.option("--components", type=click.IntRange(min=1), default=10, show_default=True, help="gmm: components."),
        click.option("--width", type=click.IntRange(min=1), default=256, show_default=True,
                     help="flow-matching, 2s-vae: MLP width."),
        click.option("--ode-steps", type=click.IntRange(min=1), default=32, show_default=True,
                     help="flow-matching: fixed ODE solver steps."),
    ]
    for option in reversed(options):  # listed in --help in this order
        f = option(f)
    return f


@cli.command("fit-prior")
@_trust_code_option
@click.argument("run_dir", type=_PATH)
@click.option("--kind", type=click.Choice(PRIOR_KINDS), default=PRIOR_KINDS[0],
              show_default=True, help="adversarial: the paper's G_psi + WGAN-GP latent critic; gmm: a full-covariance "
                                      "GMM; flow-matching: an MLP velocity field, ODE-sampled; 2s-vae: a second-stage VAE.")
@click.option("--name", default=None, help="Saved under this name, beside the run's other priors (--prior NAME); "
                                           "default: 'fitted' (prior.pt) for adversarial, else the kind.")
@click.option("--steps", type=click.IntRange(min=1), default=5000, show_default=True,
              help="Fit iterations (adversarial: each optim.critic_steps critic updates and one generator update).")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Codes per update; default: the run's.")
@click.option("--fit-points", type=click.IntRange(min=0), default=0, show_default=True,
              help="Training images encoded for the fit; 0 = all.")
@click.option("--noise-dim", type=click.IntRange(min=1), default=None,
              help="adversarial: m' of G_psi; default: the run's, else m.")
@_prior_kind_options
@click.option("--depth", type=click.IntRange(min=1), default=3, show_default=True,
              help="flow-matching, 2s-vae: hidden layers.")
@click.option("--solver", type=click.Choice(["euler", "midpoint"]), default="midpoint", show_default=True,
              help="flow-matching: the ODE solver.")
@click.option("--data-dir", type=_DATA_DIR, default=None, help="Folder with the image data files (or $FLEXAE_DATA_DIR).")
@click.option("--device", default="auto", show_default=True, help=_DEVICE_HELP)
@click.option("--seed", type=int, default=None, help="Default: the run's seed.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def fit_prior_cmd(run_dir, kind, name, steps, batch_size, fit_points, noise_dim, components, width, depth, ode_steps,
                  solver, data_dir, device, seed, quiet) -> None:
    """Fit a prior on the frozen codes of a trained run (wae, AE+GMM, RAE+GMM, ...) and save it in the
    run under its name (prior.pt for 'fitted', else priors/NAME.pt); sample, eval, export and
    load_run use it when asked (--prior NAME)."""
    from flexae.app.fit_prior import default_name, fit_prior_run
    from flexae.app.prior_kinds import PriorFitConfig
    from flexae.runs import layout
    fit = PriorFitConfig(components=components, width=width, depth=depth, ode_steps=ode_steps, solver=solver)
    stats = fit_prior_run(run_dir, kind=kind, name=name, steps=steps, batch_size=batch_size, fit_points=fit_points,
                          noise_dim=noise_dim, data_dir=data_dir, device=device, seed=seed, progress=not quiet,
                          fit=fit)
    click.echo(", ".join(f"{k} {v:.4g}" for k, v in stats.items()))
    where = checkpoint_run_dir(run_dir) / layout.prior_file_name(name or default_name(kind))
    click.echo(f"prior written to {where}")


@cli.command("compare-priors")
@_trust_code_option
@click.argument("run_dir", type=_PATH)
@click.option("--kinds", default=",".join(PRIOR_KINDS), show_default=True,
              help="Comma-separated prior kinds to fit and compare (and 'own': the run's own prior).")
@click.option("-n", "--n", "n", type=click.IntRange(min=2), default=10_000, show_default=True,
              help="Generated / test images for FID and KID (image runs; FID needs >= 2048).")
@click.option("--steps", type=click.IntRange(min=1), default=5000, show_default=True, help="Fit iterations per kind.")
@click.option("--fit-points", type=click.IntRange(min=0), default=0, show_default=True,
              help="Training images encoded for the fits; 0 = all.")
@_prior_kind_options
@click.option("--mode", type=click.Choice(INCEPTION_MODES), default=INCEPTION_MODES[0], show_default=True,
              help="Inception preprocessing (docs/metrics.md).")
@click.option("--weights", default=None, help="Inception weights file, also compact ones (`flexae metrics compact-weights`) [default: the offline TorchScript].")
@click.option("--data-dir", type=_DATA_DIR, default=None, help="Folder with the image data files (or $FLEXAE_DATA_DIR).")
@click.option("--device", default="auto", show_default=True, help=_DEVICE_HELP)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the fits and of the samples.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def compare_priors_cmd(run_dir, kinds, n, steps, fit_points, components, width, ode_steps, mode, weights, data_dir,
                       device, seed, quiet) -> None:
    """Fit each prior kind on the same codes of a trained run, evaluate each the same way (latent W1 /
    MMD to the codes; FID / KID against test images for image runs), save each as a named prior, and
    write RUN_DIR/compare-priors.md / .json and a grid of samples per prior (grids/priors-NAME.png)."""
    from flexae.app.compare_priors import compare_priors
    from flexae.app.prior_kinds import PriorFitConfig
    names = tuple(k.strip() for k in kinds.split(",") if k.strip())
    fit = PriorFitConfig(steps=steps, components=components, width=width, ode_steps=ode_steps)
    result = compare_priors(run_dir, names, n=n, fit=fit, fit_points=fit_points, mode=mode, weights=weights,
                            data_dir=data_dir, device=device, seed=seed, progress=not quiet)
    click.echo(result["markdown"], nl=False)


def checkpoint_run_dir(run_dir: Path) -> Path:
    """The run folder of RUN_DIR or of a checkpoint file in one."""
    from flexae.runs.run_folder import RunFolder
    return RunFolder.of(run_dir)[0].path


# --- using a trained model (flexae.inference) -------------------------------------------------------

_POSITIVE = click.IntRange(min=1)


def _use_options(with_data: bool):
    """RUN_DIR and the options shared by sample, reconstruct, interpolate and traverse."""
    options = [
        click.argument("run_dir", type=_PATH),
        click.option("--out", type=_PATH, required=True,
                     help="Output file: .png (grid) or .npz (uint8 N x H x W x C under 'images')."),
        click.option("--overwrite", is_flag=True, help="Replace an existing output file."),
        click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=0, show_default=True,
                     help="Seed of the random choices."),
        click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps."),
        click.option("--batch-size", type=_POSITIVE, default=256, show_default=True,
                     help="Images per forward pass."),
    ]
    if with_data:
        options.append(click.option("--data-dir", type=_DATA_DIR, default=None,
                                    help="Image data folder; default: the run's, else $FLEXAE_DATA_DIR."))

    def wrap(f):
        for option in reversed(options):  # click lists parameters in the order given here
            f = option(f)
        return _trust_code_option(f)
    return wrap


def _prior_option(f):
    return click.option("--prior", default="own", show_default=True,
                        help="The run's own prior, or the name of one `flexae fit-prior` fitted: 'fitted' "
                             "(prior.pt), or its --name (a kind: gmm, flow-matching, 2s-vae).")(f)


def _load_for_use(run_dir: Path, out: Path, overwrite: bool, device: str, prior: str = "own"):
    """Check the output path first (cheap), choose the device once, load the model onto it."""
    from flexae import inference
    from flexae.grids import check_output
    from flexae.app.load import load_run
    from flexae.devices import resolve_device

    check_output(out, overwrite)
    try:
        torch_device = resolve_device(device)
    except RuntimeError:  # torch does not know the name
        raise UserError(f"unknown device {device!r}; use auto, cpu, cuda, cuda:N or mps") from None
    model, cfg = load_run(run_dir, torch_device, prior=prior)
    inference.model_image_shape(model)  # the commands below need an image model
    return model, cfg


def _nhwc(images):
    """Float images (N, C, H, W) in [0, 1] -> uint8 numpy (N, H, W, C), the .npz layout."""
    from flexae.grids import to_uint8
    return to_uint8(images).permute(0, 2, 3, 1).numpy()


@cli.command("sample", short_help="Generated images as a PNG grid or .npz (Fig 6-9).")
@_use_options(with_data=False)
@click.option("-n", "--n", "--num", "num", type=_POSITIVE, default=225, show_default=True,
              help="Number of images (225: the 15x15 grids of Fig 6-9).")
@click.option("--columns", type=_POSITIVE, default=None, help="PNG grid width; default: a square.")
@_prior_option
def sample_cmd(run_dir, out, overwrite, seed, device, batch_size, num, columns, prior) -> None:
    """Generate N images from the model's prior (Fig 6-9); image i uses seed SEED + i, so it is the
    same whatever N and --batch-size are. RUN_DIR is a run folder, a checkpoint file in one, or a
    .safetensors file written by `flexae export`."""
    from flexae import inference
    from flexae.grids import write_images

    model, _ = _load_for_use(run_dir, out, overwrite, device, prior)
    images = inference.sample(model, num, seed, batch_size)
    write_images(out, images, columns, overwrite=overwrite, seeds=inference.seeds_array(seed, num))
    click.echo(f"wrote {num} samples to {out}")


@cli.command("reconstruct", short_help="Real images and reconstructions (Fig 4a).")
@_use_options(with_data=True)
@click.option("--split", default="test", show_default=True, help="Data split to take the images from.")
@click.option("-n", "--n", "--num", "num", type=_POSITIVE, default=10, show_default=True, help="Number of images.")
@click.option("--columns", type=_POSITIVE, default=10, show_default=True,
              help="Images per row; each row of real images is followed by its reconstructions.")
def reconstruct_cmd(run_dir, out, overwrite, seed, device, batch_size, data_dir, split, num, columns) -> None:
    """Real images and their reconstructions D(E(x)) in alternating rows (Fig 4a). An .npz holds
    the reconstructions under 'images', the originals under 'real' and their indices."""
    from flexae import inference
    from flexae.grids import write_images

    model, cfg = _load_for_use(run_dir, out, overwrite, device)
    real, recon, index = inference.reconstructions_for_run(model, cfg, split=split, n=num, seed=seed,
                                                       data_dir=data_dir, batch_size=batch_size)
    if out.suffix.lower() == ".npz":
        write_images(out, recon, overwrite=overwrite, real=_nhwc(real), index=index.numpy())
    else:
        write_images(out, inference.paired_rows(real, recon, columns), columns, overwrite=overwrite)
    click.echo(f"wrote {num} {split} images and their reconstructions to {out}")


@cli.command("interpolate", short_help="Interpolations between test images (Fig 10).")
@_use_options(with_data=True)
@click.option("--split", default="test", show_default=True, help="Data split to take the pairs from.")
@click.option("--rows", type=_POSITIVE, default=10, show_default=True, help="Pairs of images, one per row.")
@click.option("--columns", type=_POSITIVE, default=11, show_default=True,
              help="Images per row (odd: the middle one decodes the mean code).")
def interpolate_cmd(run_dir, out, overwrite, seed, device, batch_size, data_dir, split, rows, columns) -> None:
    """Rows of decoded codes (1 - t) z_a + t z_b between random pairs of images (Fig 10): the first
    and last columns are the two reconstructions, the middle column the mean code."""
    from flexae import inference
    from flexae.grids import write_images

    inference.interpolation_weights(columns)  # an even count fails before the model is loaded
    model, cfg = _load_for_use(run_dir, out, overwrite, device)
    images, pairs = inference.interpolations_for_run(model, cfg, rows=rows, columns=columns, seed=seed,
                                                 split=split, data_dir=data_dir, batch_size=batch_size)
    write_images(out, images, columns, overwrite=overwrite, t=inference.interpolation_weights(columns).numpy(),
                 pairs=pairs.numpy())
    click.echo(f"wrote {rows} interpolations of {columns} images to {out}")


@cli.command("traverse", short_help="CelebA attribute traversals (Fig 11-15).")
@_use_options(with_data=True)
@click.option("--attribute", required=True, help="CelebA attribute, e.g. Smiling, Male, Big_Nose.")
@click.option("--examples", type=_POSITIVE, default=4, show_default=True,
              help="Test images, one grid each: the first half without the attribute, the rest with it.")
@click.option("--side", type=_POSITIVE, default=7, show_default=True, help="Grid side (odd).")
@click.option("--strength", type=float, default=1.5, show_default=True,
              help="The grid runs from z - S d to z + S d, d = z_pos - z_neg.")
@click.option("--train-images", type=_POSITIVE, default=None,
              help="Estimate d on this many random training images (default: all of them).")
def traverse_cmd(run_dir, out, overwrite, seed, device, batch_size, data_dir, attribute, examples, side,
                 strength, train_images) -> None:
    """Attribute traversal on CelebA (Fig 11-15): per test image a SIDE x SIDE grid of D(z + a d) in
    reading order, a from -S to S, the centre its reconstruction; d = z_pos - z_neg, the mean code
    of the training images with the attribute minus that of those without."""
    from flexae import inference
    from flexae.grids import write_images

    inference.traversal_strengths(side, strength)  # an even side fails before the model is loaded
    model, cfg = _load_for_use(run_dir, out, overwrite, device)
    result = inference.attribute_traversal_for_run(model, cfg, attribute, data_dir=data_dir, examples=examples,
                                               side=side, strength=strength, seed=seed,
                                               train_images=train_images, batch_size=batch_size)
    write_images(out, result.images, side, groups=examples, overwrite=overwrite,
                 strengths=result.strengths.numpy(), examples=result.examples.numpy(),
                 has_attribute=result.has_attribute.numpy(), direction=result.direction.numpy())
    click.echo(f"wrote {examples} traversals along {attribute} to {out}")


# --- performance (flexae.bench) ----------------------------------------------------------------

@cli.group()
def bench() -> None:
    """Measure training speed (docs/performance.md)."""


@bench.command("train-step")
@click.option("--model", default="flexae-sr", show_default=True, help="Any model `flexae train` accepts.")
@click.option("--dataset", default="mnist", show_default=True,
              help="Data set whose shape (and default latent size) is used; random data, no files read.")
@click.option("--latent-dim", type=int, default=None, help="m; default: the paper's value for the data set.")
@click.option("--batch-size", type=int, default=_TRAIN.batch_size, show_default=True, help="Examples per timed iteration.")
@click.option("--precision", type=click.Choice(PRECISIONS), default=_TRAIN.precision, show_default=True,
              help="fp16 needs CUDA.")
@click.option("--steps", type=click.IntRange(min=1), default=10, show_default=True, help="Timed iterations.")
@click.option("--warmup", type=click.IntRange(min=0), default=2, show_default=True, help="Untimed iterations first.")
@click.option("--profile", is_flag=True,
              help="Add the time of each update (ae, critic, reg, ae_reg, gen, enc); times the eager step.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
@click.option("--cuda-graphs", type=click.Choice(CUDA_GRAPHS), default=_TRAIN.cuda_graphs, show_default=True,
              help="Replay one captured iteration (auto: on for CUDA).")
@click.option("--threads", type=click.IntRange(min=0), default=0, show_default=True,
              help="CPU threads; 0: as `flexae train` (all cores for image data).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the model and its random data.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override any config field, e.g. --set optim.feed=authors --set train.channels_last=off.")
def bench_train_step(model, dataset, latent_dim, batch_size, precision, steps, warmup, profile, device,
                     cuda_graphs, threads, seed, overrides) -> None:
    """Time full Algorithm-1 iterations of the real training step; prints one JSON object."""
    import json

    from flexae.bench import bench_train_step as run_bench
    from flexae.data import DEFAULT_LATENT_DIM

    if dataset not in DEFAULT_LATENT_DIM:
        raise UserError(f"unknown data set {dataset!r}; choose from {', '.join(DEFAULT_LATENT_DIM)}")
    cfg = RunConfig(ModelConfig(name=model, latent_dim=latent_dim or DEFAULT_LATENT_DIM[dataset]),
                    train=TrainConfig(dataset=dataset, steps=steps + warmup, batch_size=batch_size, seed=seed,
                                      device=device, precision=precision, cpu_threads=threads,
                                      cuda_graphs=cuda_graphs))
    for item in overrides:
        _apply_override(cfg, item)
    click.echo(json.dumps(run_bench(cfg, steps=steps, warmup=warmup, profile=profile)))


@cli.command("export")
@_trust_code_option
@click.argument("run_dir", type=_PATH)
@click.option("--out", type=_PATH, required=True, help="The .safetensors file to write, or the folder (--format folder).")
@click.option("--format", "fmt", type=click.Choice(["safetensors", "folder"]), default="safetensors", show_default=True,
              help="safetensors: one file; folder: config.json, model.safetensors, prior.safetensors, eval.json and "
                   "a README.md model card, for flexae.from_pretrained and the Hub.")
@click.option("--overwrite", is_flag=True, help="Replace an existing file (or the exported files in the folder).")
@_prior_option
@click.option("--with-critics", is_flag=True,
              help="Also write the critics (every weight of the model); default: what generation uses (one file only).")
def export_cmd(run_dir, out, fmt, overwrite, prior, with_critics) -> None:
    """Write a run's generation weights (encoder, decoder, prior or fitted sampler; config as
    metadata) to a .safetensors file, for publishing; `flexae sample FILE` and load_run(FILE) read it.
    With --format folder: a folder that flexae.from_pretrained(DIR) loads (and `flexae push` uploads)."""
    if fmt == "folder":
        from flexae.app.pretrained import export_folder
        if with_critics:
            raise UserError("--with-critics applies to --format safetensors only (a published folder generates)")
        click.echo(f"wrote {export_folder(run_dir, out, prior, overwrite)}")
        return
    from flexae.app.export import export_weights

    click.echo(f"wrote {export_weights(run_dir, out, overwrite, prior, with_critics=with_critics)}")


@cli.command("push")
@_trust_code_option
@click.argument("run_dir", type=_PATH)
@click.option("--repo-id", required=True, help="Hugging Face Hub repository, owner/name (created if needed).")
@_prior_option
@click.option("--private", is_flag=True, help="Create the repository private.")
def push_cmd(run_dir, repo_id, prior, private) -> None:
    """Upload a run, exported as a folder (`flexae export --format folder`), to the Hugging Face Hub;
    needs the optional huggingface_hub package (pip install 'flexae[hub]') and its login."""
    from flexae.app.pretrained import push
    click.echo(f"uploaded to {push(run_dir, repo_id, prior, private)}")


@cli.command("report")
@click.argument("run_dirs", nargs=-1, required=True, type=_PATH)
@click.option("--out", type=_PATH, default=None,
              help="Report folder (default RUN_DIR/report; needed to compare several runs).")
def report_cmd(run_dirs, out) -> None:
    """One HTML page (and report.md) of a run, or of several side by side: config, loss and metric
    curves, latest grids, eval results, timing."""
    from flexae.report import write_report

    click.echo(f"wrote {write_report(list(run_dirs), out)}")


@cli.group()
def data() -> None:
    """Image data sets: fetch them (online), write a split to a file for `flexae metrics`."""


@data.command("fetch")
@click.argument("name")
@click.option("--data-dir", type=_DATA_DIR, default=None, help="Where to put the files (default $FLEXAE_DATA_DIR, else ./data).")
def data_fetch(name, data_dir) -> None:
    """Download data set NAME with torchvision (checksums verified) unless its files are present."""
    from flexae.data.images import SPLITS, load_images

    if name not in SPLITS:
        raise UserError(f"unknown image data set {name!r}; choose from {', '.join(SPLITS)}")
    for split in SPLITS[name]:
        images = load_images(name, split, data_dir, download=True).images
        click.echo(f"{name} {split}: {images.shape[0]} images of {tuple(images.shape[1:])}")


@data.command("export")
@click.argument("name")
@click.option("--split", default="test", show_default=True, help="Data split.")
@click.option("-n", "--n", "--num", "num", type=_POSITIVE, default=None, help="The first N images (default: all).")
@click.option("--out", type=_PATH, required=True,
              help="The .npz to write: uint8 N x H x W x C under 'images', as `flexae sample` writes.")
@click.option("--data-dir", type=_DATA_DIR, default=None, help="Image data folder (default $FLEXAE_DATA_DIR, else ./data).")
@click.option("--overwrite", is_flag=True, help="Replace an existing file.")
def data_export(name, split, num, out, data_dir, overwrite) -> None:
    """Write a split of data set NAME to an .npz, e.g. the real images for `flexae metrics fid`."""
    from flexae.data.images import load_images
    from flexae.grids import check_output, save_npz

    path = check_output(out, overwrite, suffixes=(".npz",))
    images = load_images(name, split, data_dir).images[:num]  # uint8 (N, C, H, W)
    click.echo(f"wrote {save_npz(path, images)} ({images.shape[0]} {name} {split} images)")


@cli.command("eval")
@_trust_code_option
@click.argument("run_dir", type=_PATH)
@click.option("-n", "--n", "n", type=int, default=10_000, show_default=True,
              help="Generated / test images per metric (the paper uses 10k; FID needs >= 2048).")
@click.option("--metrics", "metric_names", default="fid,prd,pms,ims", show_default=True,
              help="Comma-separated subset of fid, prd, pms, ims.")
@click.option("--device", default="auto", show_default=True, help=_DEVICE_HELP)
@click.option("--data-dir", type=_DATA_DIR, default=None, help="Image data folder, if not the one recorded at training.")
@click.option("--batch-size", type=click.IntRange(min=1), default=INCEPTION_BATCH_SIZE, show_default=True,
              help="Images per Inception pass and per generation batch (as `flexae metrics`).")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), default="auto", show_default=True,
              help="Inception precision; auto = bf16 on CPUs with bf16 units, else fp32 (docs/metrics.md).")
@click.option("--mode", type=click.Choice(INCEPTION_MODES), default=INCEPTION_MODES[0], show_default=True,
              help="Inception preprocessing: pytorch-fid's resize, or tf (the TF1 FID graph's; docs/metrics.md).")
@click.option("--weights", default=None, help="Inception weights file, also compact ones (`flexae metrics compact-weights`) [default: the offline TorchScript].")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the generated samples, the training subsets and PRD's k-means.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@_prior_option
def eval_cmd(run_dir, n, metric_names, device, data_dir, batch_size, precision, mode, weights, seed, quiet,
             prior) -> None:
    """Paper protocol for a trained image model: writes RUN_DIR/eval.json and eval.md."""
    from flexae.app.evaluate import evaluate_run
    from flexae.evaluation import results_markdown

    if n < 2:
        raise UserError(f"--n must be at least 2, got {n}")
    names = tuple(m.strip() for m in metric_names.split(",") if m.strip())
    if not names:  # an empty list would compute nothing and still exit 0
        raise UserError(f"--metrics needs at least one of fid, prd, pms, ims, got {metric_names!r}")
    results = evaluate_run(run_dir, n, names, device, data_dir, batch_size, precision, weights, seed,
                           progress=not quiet, mode=mode, prior=prior)
    click.echo(results_markdown(results, label=results["model"]), nl=False)


def _register_metrics() -> None:
    from flexae.metrics.cli import metrics

    cli.add_command(metrics)


_register_metrics()
if _START_UP_SIGINT:  # imports done: Ctrl-C is a KeyboardInterrupt again (click: Abort, exit 130)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _import_torch_uninterrupted(args: list[str]) -> None:
    """Import numpy and torch (seconds) with Ctrl-C ending the process at once: one line, exit 130.

    Commands import them lazily, so that `--help` is instant. A KeyboardInterrupt raised inside
    their half-done import leaves numpy broken (the next `import numpy` recurses until a
    RecursionError) or lands in code that torch runs through `PyRun_String`, after which Python ends
    itself by SIGINT whatever exit code `main` asks for. Nothing has been written yet, so exiting at
    once loses nothing.
    """
    if ({"--help", "-h", "--version"} & set(args) or "torch" in sys.modules
            or threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        return
    signal.signal(signal.SIGINT, _interrupted_at_start_up)
    try:
        import numpy  # noqa: F401
        import torch  # noqa: F401
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning user errors into one line on stderr and exit code 2."""
    args = sys.argv[1:] if argv is None else list(argv)
    if not args:  # bare `flexae`: the help, not an error
        click.echo(cli.get_help(click.Context(cli, info_name="flexae")))
        sys.exit(0)
    try:
        _import_torch_uninterrupted(args)
        with _one_line_warnings():
            cli.main(args=args, prog_name="flexae", standalone_mode=False)
    except (UserError, click.ClickException) as exc:
        message = exc.format_message() if isinstance(exc, click.ClickException) else str(exc)
        click.echo(f"flexae: error: {message}", err=True)
        sys.exit(2)
    except (click.exceptions.Abort, KeyboardInterrupt) as exc:  # Ctrl-C (click turns it into Abort)
        click.echo("flexae: aborted", err=True)
        if argv is None and _from_ctrl_c(exc):
            _exit_at_once(130)
        sys.exit(130)
    except TrainingStopped as exc:  # SIGINT/SIGTERM: the checkpoint is saved, but the run did not finish
        click.echo(f"flexae: {exc}", err=True)
        # 128 + the signal, as a shell reports a process the signal ended: `flexae train ... &&
        # flexae eval ...` must not go on to evaluate a half-trained run.
        sys.exit(128 + int(getattr(signal.Signals, exc.signal_name, signal.SIGINT)))


def _from_ctrl_c(exc: BaseException) -> bool:
    """Whether ``exc`` is, or was raised from, a KeyboardInterrupt (click re-raises it as Abort)."""
    while exc is not None:
        if isinstance(exc, KeyboardInterrupt):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _exit_at_once(code: int) -> None:
    """End the process with ``code`` now, streams flushed.

    ``sys.exit`` cannot be trusted after a Ctrl-C: if the KeyboardInterrupt went through code that
    Python ran from a string (``exec`` of a source string: dataclasses and namedtuples build their
    methods so, as does torch), CPython remembers it as unhandled and, once ``main`` returns, ends
    itself by SIGINT (-2) whatever exit code was asked for. Every ``finally`` has run by now, and
    writes go through temporary files, so skipping interpreter teardown loses nothing.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing more can be said there
            pass
    os._exit(code)


@contextlib.contextmanager
def _one_line_warnings():
    """Warnings as one `flexae: warning: ...` line each (no source path or code line)."""
    def show(message, category, filename, lineno, file=None, line=None):
        text = " ".join(str(message).split())
        click.echo(f"flexae: warning: {text}", err=True)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield
