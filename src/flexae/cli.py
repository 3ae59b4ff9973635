"""The `flexae` command line. Every error a user can fix is printed on one line, exit code 2."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from click.core import ParameterSource

from flexae.config import ModelConfig, RunConfig, TrainConfig
from flexae.errors import UserError
from flexae.training.signals import TrainingStopped


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
                            f"saved in its checkpoint (only --steps, --device and --data-dir may change)")


@cli.command()
@click.option("--model", default="flexae", show_default=True, help="flexae, flexae-sr, wae, wae-gmm, vae.")
@click.option("--dataset", default="synthetic-5d", show_default=True,
              help="synthetic-5d, synthetic-2d, mnist, fashion-mnist, cifar10, celeba.")
@click.option("--latent-dim", type=int, default=None, help="m; default: the paper's value for the data set.")
@click.option("--noise-dim", type=int, default=None, help="m', the prior generator's noise size; default m.")
@click.option("--steps", type=int, default=None, help="Training iterations (total, also with --resume).")
@click.option("--batch-size", type=int, default=128, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
@click.option("--precision", default="fp32", show_default=True, help="fp32 or bf16 (autocast).")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Run folder to create.")
@click.option("--overwrite", is_flag=True, help="Replace the files of an existing run folder.")
@click.option("--resume", "resume_dir", type=click.Path(path_type=Path), default=None,
              help="Continue the run in this folder from its checkpoint.")
@click.option("--data-dir", default=None, help="Folder with the image data files (or $FLEXAE_DATA_DIR).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override any config field, e.g. --set optim.gen.lr=2e-4 --set train.eval_every=100.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def train(model, dataset, latent_dim, noise_dim, steps, batch_size, seed, device, precision, out,
          overwrite, resume_dir, data_dir, overrides, quiet) -> None:
    """Train a model; writes config.json, log.jsonl, checkpoint.pt and metrics.json to --out."""
    from flexae.presets import DEFAULT_LATENT_DIM
    from flexae.training import loop
    from flexae.validation import validate_data_dir, validate_out_dir, validate_resume_dir

    validate_data_dir(data_dir)
    if resume_dir is not None:
        if out is not None and Path(out) != resume_dir:
            raise UserError("give either --out (new run) or --resume (existing run), not both")
        _refuse_with_resume(("model", "dataset", "latent_dim", "noise_dim", "batch_size", "seed",
                             "precision", "overwrite", "overrides"))
        validate_resume_dir(resume_dir)
        given = click.get_current_context().get_parameter_source("device") == ParameterSource.COMMANDLINE
        run_dir = loop.resume(resume_dir, steps, data_dir=data_dir, progress=not quiet,
                              device=device if given else None)
    else:
        if out is None:
            raise UserError("--out RUN_DIR is required (the folder the run is written to)")
        validate_out_dir(out)
        if dataset not in DEFAULT_LATENT_DIM:
            raise UserError(f"unknown data set {dataset!r}; choose from {', '.join(DEFAULT_LATENT_DIM)}")
        cfg = RunConfig(ModelConfig(name=model, latent_dim=latent_dim or DEFAULT_LATENT_DIM[dataset],
                                    noise_dim=noise_dim),
                        train=TrainConfig(dataset=dataset, steps=steps if steps is not None else 5000,
                                          batch_size=batch_size, seed=seed, device=device, precision=precision))
        if latent_dim is not None and latent_dim <= 0:
            raise UserError(f"--latent-dim must be positive, got {latent_dim}")
        for item in overrides:
            _apply_override(cfg, item)
        run_dir = loop.train(cfg, out, overwrite=overwrite, data_dir=data_dir, progress=not quiet)
    click.echo(f"run written to {run_dir}")


@cli.group()
def reproduce() -> None:
    """Re-run one table or figure of the paper."""


def _reproduce_options(default_steps: int):
    def wrap(f):
        f = click.option("--out", type=click.Path(path_type=Path), required=True, help="Output folder.")(f)
        f = click.option("--seeds", type=int, default=1, show_default=True, help="Seeds 0..K-1 per model.")(f)
        f = click.option("--steps", type=int, default=default_steps, show_default=True,
                         help="Training iterations per run.")(f)
        f = click.option("--device", default="auto", show_default=True)(f)
        f = click.option("--quiet", is_flag=True, help="No progress bars.")(f)
        return f
    return wrap


@reproduce.command("fig2")
@_reproduce_options(3000)
def fig2(out, seeds, steps, device, quiet) -> None:
    """Fig 2: WAE vs FlexAE on synthetic-5d (m = 50): latent W1 over training, final FD."""
    from flexae.experiments.synthetic import reproduce_fig2
    click.echo(reproduce_fig2(out, seeds, steps, device, progress=not quiet), nl=False)
    click.echo(f"wrote {out / 'fig2.png'} and {out / 'results.json'}")


@reproduce.command("fig3")
@_reproduce_options(3000)
def fig3(out, seeds, steps, device, quiet) -> None:
    """Fig 3: latent spaces of VAE, WAE-N(0,I), WAE-GMM and FlexAE on synthetic-2d (m = 2)."""
    from flexae.experiments.synthetic import reproduce_fig3
    click.echo(reproduce_fig3(out, seeds, steps, device, progress=not quiet), nl=False)
    click.echo(f"wrote {out / 'fig3.png'} and {out / 'results.json'}")


@cli.command("export")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True, help="The .safetensors file to write.")
@click.option("--overwrite", is_flag=True, help="Replace an existing file.")
def export_cmd(run_dir, out, overwrite) -> None:
    """Write a run's model weights to a .safetensors file (config as metadata), for publishing."""
    from flexae.export import export_weights

    click.echo(f"wrote {export_weights(run_dir, out, overwrite)}")


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning user errors into one line on stderr and exit code 2."""
    try:
        cli.main(args=argv, prog_name="flexae", standalone_mode=False)
    except (UserError, click.ClickException) as exc:
        message = exc.format_message() if isinstance(exc, click.ClickException) else str(exc)
        click.echo(f"flexae: error: {message}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("flexae: aborted", err=True)
        sys.exit(130)
    except TrainingStopped as exc:  # SIGINT/SIGTERM: the checkpoint is saved, nothing failed
        click.echo(f"flexae: {exc}", err=True)
        sys.exit(0)
