"""Uploaded document photos: checked by content, re-encoded without metadata.

A file is accepted when its bytes decode completely as a JPEG or PNG image (whatever its name
says: a PNG named .jpg is stored as the PNG it is), it is at most ``MAX_BYTES`` long and its
pixel count stays under ``MAX_PIXELS`` (a small file that would decode to gigabytes is a
decompression bomb). The stored copy is re-encoded from the pixels, which drops EXIF (camera,
GPS position), comments and any bytes appended to the image.
"""

from __future__ import annotations

import io
import warnings

from PIL import Image, ImageOps, UnidentifiedImageError

from idp.errors import Refused

MAX_BYTES = 1024 * 1024
MAX_PIXELS = 25_000_000  # e.g. 5000 × 5000; a phone photo is about 12 million
EXTENSIONS = {"jpg", "jpeg", "png"}
FORMATS = {"JPEG": ("image/jpeg", "jpg"), "PNG": ("image/png", "png")}

REASONS = ("document_missing", "document_too_large", "document_bad_extension", "document_not_an_image",
           "document_damaged", "document_too_many_pixels")


class DocumentRejected(Refused, ValueError):
    pass


def clean_image(data: bytes, filename: str | None) -> tuple[bytes, str]:
    """(re-encoded bytes, content type), or DocumentRejected with one of ``REASONS``."""
    if not data:
        raise DocumentRejected("document_missing")
    if len(data) > MAX_BYTES:
        raise DocumentRejected("document_too_large")
    extension = (filename or "").rsplit(".", 1)[-1].lower() if "." in (filename or "") else ""
    if extension not in EXTENSIONS:
        raise DocumentRejected("document_bad_extension")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=list(FORMATS))
        except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise DocumentRejected("document_not_an_image") from None
        except (OSError, SyntaxError, ValueError):
            raise DocumentRejected("document_not_an_image") from None
        if image.width * image.height > MAX_PIXELS:
            raise DocumentRejected("document_too_many_pixels")
        try:
            image.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise DocumentRejected("document_too_many_pixels") from None
        except (OSError, SyntaxError, ValueError, EOFError):
            raise DocumentRejected("document_damaged") from None
    fmt = image.format
    content_type, _ = FORMATS[fmt]
    image = ImageOps.exif_transpose(image)  # keep the orientation the EXIF tag gave, then drop it
    if fmt == "JPEG" and image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    clean = image.copy()
    clean.info = {}  # no EXIF, XMP, ICC, comments or text chunks are carried over
    out = io.BytesIO()
    if fmt == "JPEG":
        clean.save(out, "JPEG", quality=90)
    else:
        clean.save(out, "PNG")
    return out.getvalue(), content_type
