"""Consent before importing code that a file names: the one place that decides.

A config may name networks of the user's own as "module:Class" (`ModelConfig.encoder` /
`decoder`). Importing that module runs its top-level code, so a config read from a file (a
checkpoint, `config.json`, an exported `.safetensors` file: `flexae.validation.config_from_dict`
marks it with `mark_from_file`) may name a module only if

- the user allows it: `trust_code=True` in the Python API, `--trust-code` on the command line
  (`allowing_code`), as Hugging Face's `trust_remote_code`; or
- the user named that module in this process: a class given to `ModelConfig` / `build_model`, or
  a "module:Class" of a config built in Python or on the command line (`--set model.encoder=...`)
  and not read from a file (`note_named`).

Otherwise `check_import` refuses with one line, before anything is imported. A refused module is
never looked for anywhere, so a module placed beside a run or in the working directory is not
imported however Python's search path is set up (`python -m flexae` puts the working directory on it).
"""

from __future__ import annotations

import contextlib
from contextvars import ContextVar
from typing import Any, Iterator

from flexae.errors import UserError

# True inside `allowing_code(True)`: the user consented to importing what the loaded files name.
_ALLOWED: ContextVar[bool] = ContextVar("flexae_trust_code", default=False)
# Modules the user named in this process (not read from a file): their choice, not the file's.
_NAMED: set[str] = set()
# The attribute `mark_from_file` sets on a ModelConfig read from a file: (source, {field: reference}).
_FILE_MARK = "_references_from_file"


@contextlib.contextmanager
def allowing_code(enabled: bool = True) -> Iterator[None]:
    """With `enabled`, modules named by loaded files may be imported inside the block. `False`
    changes nothing (it never revokes a consent given further out, e.g. by `--trust-code`)."""
    if not enabled:
        yield
        return
    token = _ALLOWED.set(True)
    try:
        yield
    finally:
        _ALLOWED.reset(token)


def code_allowed() -> bool:
    """Whether this code runs inside `allowing_code(True)` (passed on to a sweep's worker processes)."""
    return _ALLOWED.get()


def note_named(reference: str) -> None:
    """Record the module of a "module:Class" reference the user named in this process."""
    module = str(reference).partition(":")[0]
    if module:
        _NAMED.add(module)


def mark_from_file(model_cfg: Any, source: object) -> None:
    """Mark the class references of a ModelConfig just read from the file `source`."""
    references = {name: getattr(model_cfg, name) for name in ("encoder", "decoder") if getattr(model_cfg, name)}
    if ":" in str(getattr(model_cfg, "name", "")):  # a model of the user's own, "module:Name"
        references["name"] = model_cfg.name
    setattr(model_cfg, _FILE_MARK, (str(source), references))


def check_import(model_cfg: Any, field: str, reference: str) -> None:
    """Raise a one-line UserError unless the module of `reference` (the value of `model_cfg.<field>`)
    may be imported: see the module docstring. A reference not read from a file counts as named."""
    module = reference.partition(":")[0]
    source, from_file = getattr(model_cfg, _FILE_MARK, (None, {}))
    if from_file.get(field) != reference:  # the user's own config (or changed by the user since)
        note_named(reference)
        return
    if _ALLOWED.get() or module in _NAMED:
        return
    what = "model" if field == "name" else "network"
    raise UserError(f"{source} names {what} code {reference!r}: importing module {module} would run its code, "
                    f"so flexae does not import it without your consent; if you trust it, pass --trust-code "
                    f"(in Python: trust_code=True)")
