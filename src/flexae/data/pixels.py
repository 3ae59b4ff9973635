"""The one rule for images deeper than 8 bits, shared by both image-file readers (image folders,
for every command, in flexae.data.user.ImageFiles; CelebA in flexae.data.images), so a 16-bit or
float file means the same everywhere:

- 16-bit integer (PIL modes I;16, I;16B, I;16L, and I when every value lies in 0..65535): the high
  byte, `value >> 8` (65535 -> 255, 257 -> 1). This is what PIL itself does when it reads a 16-bit
  RGB PNG (mode RGB), so 16-bit grey and colour files are scaled alike.
- float (mode F): values in [0, 1] -> round(value * 255); anything else (NaN, negative, above 1,
  e.g. a [0, 255] or [-1, 1] float image) is refused with one line, since any mapping would be a guess.
- every other mode is left to the reader (8-bit, palette, RGBA, ...).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from flexae.errors import UserError

SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")


def to_8bit(image: Any, path: Any) -> Any:
    """A PIL image of mode I;16* / I / F as the 8-bit grey image (mode L) the rule above gives; any
    other image unchanged. `path` names the file in the one-line UserError for values out of range."""
    from PIL import Image

    if image.mode in SIXTEEN_BIT_MODES or image.mode == "I":
        values = np.asarray(image).astype(np.int64)  # (H, W)
        if image.mode == "I" and values.size and (values.min() < 0 or values.max() > 65535):
            raise UserError(f"{path}: 32-bit integer image with values in [{values.min()}, {values.max()}]; "
                            f"save it as 8-bit or 16-bit (0..65535)")
        return Image.fromarray((values >> 8).astype(np.uint8), mode="L")
    if image.mode == "F":
        values = np.asarray(image, dtype=np.float64)  # (H, W)
        if not np.isfinite(values).all() or (values.size and (values.min() < 0 or values.max() > 1)):
            low, high = (np.nanmin(values), np.nanmax(values)) if np.isfinite(values).any() else (np.nan, np.nan)
            raise UserError(f"{path}: float image with values outside [0, 1] (min {low:.4g}, max {high:.4g}"
                            f"{', NaN or infinity' if not np.isfinite(values).all() else ''}); "
                            f"save it as 8-bit, or as float in [0, 1]")
        return Image.fromarray(np.rint(values * 255).astype(np.uint8), mode="L")
    return image
