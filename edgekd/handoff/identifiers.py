"""C identifiers for the bundle, derived from the recipe's `handoff.model_name`.

`model_name = "model"` (the default) gives `g_model` / `g_model_len`; "digits" gives `g_digits` /
`g_digits_len`; "My Model-v2" gives `g_my_model_v2`. Identifiers are lower-case snake case, never start with
a digit, never contain a double underscore (reserved in C++), and macros get an upper-case prefix.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from edgekd.errors import HandoffError

_NOT_IDENT = re.compile(r"[^0-9a-zA-Z]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
#: C and C++ keywords; a sanitised name equal to one of these gets a suffix (only matters for bare names).
C_KEYWORDS = frozenset(
    [
        "alignas",
        "alignof",
        "and",
        "asm",
        "auto",
        "bool",
        "break",
        "case",
        "catch",
        "char",
        "class",
        "const",
        "constexpr",
        "continue",
        "default",
        "delete",
        "do",
        "double",
        "else",
        "enum",
        "explicit",
        "export",
        "extern",
        "false",
        "float",
        "for",
        "friend",
        "goto",
        "if",
        "inline",
        "int",
        "long",
        "mutable",
        "namespace",
        "new",
        "noexcept",
        "not",
        "nullptr",
        "operator",
        "or",
        "private",
        "protected",
        "public",
        "register",
        "return",
        "short",
        "signed",
        "sizeof",
        "static",
        "struct",
        "switch",
        "template",
        "this",
        "throw",
        "true",
        "try",
        "typedef",
        "typeid",
        "typename",
        "union",
        "unsigned",
        "using",
        "virtual",
        "void",
        "volatile",
        "while",
        "xor",
    ]
)


def c_identifier(text: str, *, fallback: str = "model") -> str:
    """`text` as a lower-case snake-case C identifier: ASCII letters, digits and single underscores."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    words = _NOT_IDENT.sub("_", _CAMEL.sub("_", ascii_text)).strip("_").lower()
    words = re.sub(r"_+", "_", words)
    if not words:
        words = fallback
    if words[0].isdigit():
        words = f"m_{words}"
    if words in C_KEYWORDS:
        words = f"{words}_"
    return words


@dataclass(frozen=True)
class BundleSymbols:
    """Every C name the generated sources use, so the headers, check program and README agree."""

    base: str  # "digits"

    @property
    def model_array(self) -> str:
        return f"g_{self.base}"

    @property
    def model_length(self) -> str:
        return f"g_{self.base}_len"

    @property
    def macro_prefix(self) -> str:
        return self.base.upper()

    @property
    def namespace(self) -> str:
        return f"{self.base}_manifest"

    def golden_input(self, index: int) -> str:
        return f"g_{self.base}_golden_input_{index}"

    def golden_output(self, index: int) -> str:
        return f"g_{self.base}_golden_output_{index}"

    def header_guard(self, file_name: str) -> str:
        return f"{self.macro_prefix}_{c_identifier(file_name).upper()}_"

    @property
    def resolver_function(self) -> str:
        return f"Register{''.join(part.capitalize() for part in self.base.split('_'))}Ops"

    @property
    def resolver_type(self) -> str:
        return f"{''.join(part.capitalize() for part in self.base.split('_'))}OpResolver"


def bundle_symbols(model_name: str) -> BundleSymbols:
    """The symbols for a model name. Refused rather than guessed: a name with no ASCII letter or digit, and
    a name with letters that have no ASCII form (Cyrillic, CJK, ...), which sanitising would silently drop
    ("модель2" would become `g_m_2`). Accents are fine: "résumé" gives `g_resume`."""
    hint = 'set [handoff] model_name (edgekd handoff --model-name) to an ASCII name, e.g. "digits" -> g_digits'
    if not isinstance(model_name, str) or not model_name.strip():
        raise HandoffError(f"handoff model_name {model_name!r} is empty", hint=hint)
    dropped = "".join(
        dict.fromkeys(
            ch for ch in model_name if ch.isalnum() and not unicodedata.normalize("NFKD", ch).encode("ascii", "ignore")
        )
    )
    if dropped:
        raise HandoffError(
            f"handoff model_name {model_name!r} has letters with no ASCII form ({dropped}): the C identifiers "
            "made from it (g_<name>, <name>_manifest) can hold only ASCII letters, digits and '_'",
            hint=hint,
        )
    if not _NOT_IDENT.sub("", unicodedata.normalize("NFKD", model_name).encode("ascii", "ignore").decode("ascii")):
        raise HandoffError(
            f"handoff model_name {model_name!r} has no ASCII letter or digit to build C identifiers from",
            hint=hint,
        )
    return BundleSymbols(c_identifier(model_name))
