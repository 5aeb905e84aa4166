"""Login names: one case-insensitive namespace across both account types.

Input is normalised before anything else: NFKC turns full-width letters and digits
(ＡＢＣ１２３) into their ASCII forms, surrounding white space is dropped, and the key used for
uniqueness and look-up is the case-folded form. The account keeps the name as normalised.
"""

from __future__ import annotations

import re
import unicodedata

LOGIN_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.@\-\u4e00-\u9fff]{4,64}$")


def normalise_login_name(raw: str | None) -> str:
    return unicodedata.normalize("NFKC", raw or "").strip()


def login_name_key(normalised: str) -> str:
    return normalised.casefold()


def is_valid_login_name(normalised: str) -> bool:
    return bool(LOGIN_NAME_PATTERN.match(normalised))
