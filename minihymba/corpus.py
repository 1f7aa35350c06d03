"""The text corpus: the Python 3.11 documentation as plain English, its tokenizer, token streams, batches.

The tiny text model is trained on real English that every Debian machine can reproduce offline: the
reStructuredText sources of the Python documentation shipped by the Debian package ``python3.11-doc``
(``sudo apt-get install python3.11-doc``; the corpus was built from version :data:`DEBIAN_VERSION`).

The pipeline, one command line step each (``python -m minihymba.corpus STEP --help``)::

    prepare    _sources/**/*.rst.txt --clean_rst--> documents --split by path hash--> train.txt, heldout.txt
    tokenizer  train.txt --byte-level BPE (4096 tokens)--> minihymba/assets/tiny-text/tokenizer.json ...
    encode     train.txt, heldout.txt --tokenizer--> train_tokens.safetensors, heldout_tokens.safetensors
    sample     heldout.txt --> minihymba/assets/tiny-text/heldout_sample.txt (a few KB, committed)

Formats:

* ``train.txt`` / ``heldout.txt``: UTF-8 documents, each followed by a line holding only a form feed
  (:data:`DOC_SEPARATOR`); inside a document, paragraphs (and headings) are single lines separated by one
  blank line. :func:`read_documents` reads them back.
* ``*_tokens.safetensors``: one 1-D int32 tensor ``tokens``: every document's tokens followed by EOS. BOS
  never occurs in the stream: :func:`lm_batch` puts it at position 0 of every row (the attention sink).

Special tokens: ``<|pad|>`` = 0, ``<|bos|>`` = 1, ``<|eos|>`` = 2 (the ids of :class:`minihymba.HymbaConfig`).

Training and evaluation windows (B rows, T positions; ``s`` is the token stream)::

    input_ids[b] = BOS, s[o], s[o+1], ..., s[o+T-2]
    targets[b]   = s[o], s[o+1], ...,     s[o+T-1]         every position is scored; BOS is never a target

Importing this module reads nothing; ``tokenizers`` and ``transformers`` are imported only when used.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import math
import re
import string
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "DEBIAN_PACKAGE",
    "DEBIAN_VERSION",
    "SOURCES_DIR",
    "EXCLUDED",
    "HELDOUT_PER_MILLE",
    "DOC_SEPARATOR",
    "SPECIAL_TOKENS",
    "PAD_ID",
    "BOS_ID",
    "EOS_ID",
    "TOKENIZER_DIR",
    "CorpusError",
    "installed_version",
    "check_sources",
    "source_files",
    "clean_inline",
    "rst_paragraphs",
    "section_labels",
    "clean_rst",
    "is_heldout",
    "split_paths",
    "read_documents",
    "write_documents",
    "prepare",
    "sample_windows",
    "sample_corpus",
    "build_tokenizer",
    "save_tokenizer",
    "train_tokenizer",
    "encode_documents",
    "load_tokens",
    "encode",
    "lm_batch",
    "heldout_batches",
    "unigram_loss",
    "heldout_sample",
    "write_assets",
    "main",
]

DEBIAN_PACKAGE = "python3.11-doc"
DEBIAN_VERSION = "3.11.2-6+deb12u9"  # the version the shipped tokenizer and checksums were made from
SOURCES_DIR = Path("/usr/share/doc/python3.11/html/_sources")
APT_COMMAND = f"sudo apt-get install {DEBIAN_PACKAGE}"
TOKENIZER_DIR = Path(__file__).resolve().parent / "assets" / "tiny-text"

# Source files left out, with the reason (all other *.rst.txt files are used; files that clean to nothing,
# such as pure table-of-contents pages, are dropped too and listed in the manifest).
EXCLUDED = {
    "copyright.rst.txt": "copyright notice, not documentation prose",
    "license.rst.txt": "licence terms (legal text, long and repetitive), not documentation prose",
    "whatsnew/changelog.rst.txt": "only a directive that includes Misc/NEWS, which _sources does not ship",
}
HELDOUT_PER_MILLE = 50  # ~5% of the files are held out (see is_heldout)
DOC_SEPARATOR = "\n\f\n"  # written after every document in train.txt / heldout.txt

SPECIAL_TOKENS = ("<|pad|>", "<|bos|>", "<|eos|>")
PAD_ID, BOS_ID, EOS_ID = 0, 1, 2


class CorpusError(RuntimeError):
    """The corpus cannot be built as recorded (sources missing, other package version, files absent)."""


# ----------------------------------------------------------------------------------------- the sources


def installed_version(package: str = DEBIAN_PACKAGE) -> str | None:
    """The installed Debian version of ``package`` (``dpkg-query``), or None if not installed / no dpkg."""
    try:
        done = subprocess.run(
            ["dpkg-query", "-W", "-f", "${Version}", package], capture_output=True, text=True, check=False
        )
    except FileNotFoundError:
        return None
    version = done.stdout.strip() if done.returncode == 0 else ""
    return version or None


def check_sources(sources: Path = SOURCES_DIR, *, allow_other_version: bool = False) -> str:
    """The package version of ``sources``; CorpusError (naming the apt command) if it is not the recorded one.

    With ``allow_other_version`` a different or unknown version only prints a warning: the corpus is then
    built, but its checksums and the shipped tokenizer will not match the recorded ones.
    """
    if not any(sources.rglob("*.rst.txt*")):
        raise CorpusError(f"no *.rst.txt sources under {sources}; install them with: {APT_COMMAND}")
    version = installed_version()
    if version != DEBIAN_VERSION:
        found = f"version {version}" if version else "no dpkg record of it"
        message = (
            f"{DEBIAN_PACKAGE}: found {found}, the recorded corpus was built from {DEBIAN_VERSION}. "
            f"Install that version (sudo apt-get install {DEBIAN_PACKAGE}={DEBIAN_VERSION}, if your "
            "mirror still has it) or pass --allow-other-version to build a corpus that differs."
        )
        if not allow_other_version:
            raise CorpusError(message)
        print(f"warning: {message}", file=sys.stderr)
    return version or "unknown"


def source_files(sources: Path = SOURCES_DIR) -> list[str]:
    """Every ``*.rst.txt`` (or gzipped ``*.rst.txt.gz``) under ``sources``: relative POSIX paths, sorted.

    The ``.gz`` suffix is dropped from the name, so the split is the same whether or not Debian compressed
    a file.
    """
    paths = {p.relative_to(sources).as_posix().removesuffix(".gz") for p in sources.rglob("*.rst.txt*")}
    return sorted(p for p in paths if p.endswith(".rst.txt"))


def _read_source(sources: Path, relative: str) -> str:
    path = sources / relative
    data = path.read_bytes() if path.is_file() else gzip.decompress((sources / f"{relative}.gz").read_bytes())
    return data.decode("utf-8")


# --------------------------------------------------------------------------------- cleaning: inline

_INLINE = re.compile(
    r"``(?P<literal>.+?)``"  # ``code`` -> code
    r"|:(?P<role>[A-Za-z][\w.+-]*(?::[\w.+-]+)*):`(?P<role_text>(?:[^`\\]|\\.)+)`"  # :func:`x` -> x
    r"|`(?P<link>(?:[^`\\]|\\.)+)`__?"  # `text <url>`_ -> text
    r"|`(?P<interpreted>(?:[^`\\]|\\.)+)`"  # `x` -> x
    r"|\*\*(?P<strong>[^*\s](?:[^*]*[^*\s])?)\*\*"  # **x** -> x
    r"|(?<![\w*\\])\*(?P<emphasis>[^*\s](?:[^*]*[^*\s])?)\*(?![\w*])"  # *x* -> x
    r"|\|(?P<substitution>[^|\s](?:[^|]*[^|\s])?)\|(?:__?)?"  # |name| -> dropped
    r"|\[(?P<footnote>[#*]?[\w.-]*)\]_"  # [1]_ [#]_ [CIT]_ -> dropped
    r"|(?<![\w`\\])(?P<reference>[A-Za-z0-9](?:[\w.-]*[A-Za-z0-9])?)__?(?!\w)"  # word_ -> word
    r"|\\(?P<escape>.)",  # \* -> *, "\ " -> nothing
    re.S,
)
_TITLE_TARGET = re.compile(r"(?P<title>.*?)\s*<(?P<target>[^<>]*)>", re.S)
_ESCAPE = re.compile(r"\\(.)", re.S)


def _unescape(text: str) -> str:
    return _ESCAPE.sub(lambda m: "" if m[1].isspace() else m[1], text)


def _role_text(role: str, text: str, labels: Mapping[str, str]) -> str:
    """What Sphinx shows for ``:role:`text```: the explicit title, else the (shortened) target.

    ``:ref:`label``` without a title shows the section title ``labels[label]`` (see :func:`section_labels`).
    """
    text = _unescape(text)
    match = _TITLE_TARGET.fullmatch(text)
    if match and match["title"]:
        return match["title"]
    target = match["target"] if match else text
    role = role.lower().rsplit(":", 1)[-1]
    if role in ("pep", "rfc"):
        return f"{role.upper()} {target.split('#')[0]}"
    if role in ("issue", "gh"):
        return f"{'bpo' if role == 'issue' else 'gh'}-{target}"
    if role == "ref":
        return labels.get(target.lower(), target)
    if role == "abbr":
        return re.sub(r"\s*\(.*\)$", "", target, flags=re.S)  # "EOF (End of File)" -> "EOF"
    target = target.lstrip("!")  # "!" only suppresses the link
    return target[1:].rsplit(".", 1)[-1] if target.startswith("~") else target  # "~os.path.join" -> "join"


def _inline_replacement(match: re.Match[str], labels: Mapping[str, str]) -> str:
    kind, value = match.lastgroup, match[match.lastgroup or 0]
    if kind == "literal":
        return value
    if kind == "role_text":
        return _role_text(match["role"], value, labels)
    if kind == "link":
        title_target = _TITLE_TARGET.fullmatch(_unescape(value))
        return (title_target["title"] or title_target["target"]) if title_target else _unescape(value)
    if kind in ("interpreted", "strong", "emphasis"):
        return _unescape(value)
    if kind in ("substitution", "footnote"):
        return ""
    if kind == "reference":
        return value
    return "" if value.isspace() else value  # escape


def clean_inline(text: str, labels: Mapping[str, str] | None = None) -> str:
    """Plain text of one paragraph: inline markup removed, whitespace collapsed to single spaces.

    >>> clean_inline("Use :func:`~os.path.join` (see :pep:`8` and ``x = 1``), *not* **this**.")
    'Use join (see PEP 8 and x = 1), not this.'
    """
    return " ".join(_INLINE.sub(lambda m: _inline_replacement(m, labels or {}), text).split())


# ---------------------------------------------------------------------------------- cleaning: blocks

_PUNCT = re.escape(string.punctuation)
_ADORNMENT = re.compile(rf"^([{_PUNCT}])\1{{2,}}\s*$")  # heading under/overline or transition
_SIMPLE_TABLE = re.compile(r"^\s*=+(\s+=+)+\s*$")  # "=====  =====" border
_GRID_TABLE = re.compile(r"^\s*\+[-=+]*[-=][-=+]*\+\s*$")  # "+-----+----+" border
_EXPLICIT = re.compile(r"^\s*\.\.(\s|$)")  # directive, comment, target, footnote, substitution
_DIRECTIVE = re.compile(r"^\s*\.\.\s+(?P<name>[A-Za-z][\w:.+-]*)::(?P<args>.*)$")
_FIELD = re.compile(r"^\s*:[^`:\s][^`:]*:(\s|$)")  # ":Author: ..." (not a role: no backtick)
_BULLET = re.compile(r"^\s*([-*+\u2022|]|#\.|\d+[.)]|\(\d+\)|\([A-Za-z]\))\s+(?=\S)")  # "| " line block

# Directives whose body is prose kept (signature / arguments dropped); every other directive is dropped
# with its content (code-block, doctest, productionlist, index, toctree, tables, images, ...).
_DESCRIPTIONS = {
    "function",
    "method",
    "classmethod",
    "staticmethod",
    "abstractmethod",
    "coroutinefunction",
    "coroutinemethod",
    "awaitablefunction",
    "awaitablemethod",
    "decorator",
    "decoratormethod",
    "attribute",
    "data",
    "class",
    "exception",
    "describe",
    "object",
    "cmdoption",
    "option",
    "envvar",
    "opcode",
    "pdbcommand",
    "2to3fixer",
    "only",
    "member",
    "macro",
    "type",
    "var",
    "struct",
    "union",
    "enum",
    "enumerator",
    "expr",
}
_ADMONITIONS = {  # no arguments: the text right after "::" is already content
    "note",
    "warning",
    "seealso",
    "important",
    "caution",
    "tip",
    "hint",
    "attention",
    "danger",
    "error",
    "impl-detail",
    "epigraph",
    "highlights",
    "pull-quote",
    "glossary",
}
_TITLED = {"rubric", "topic", "sidebar", "admonition"}  # the argument is a title, kept as a paragraph
_VERSIONS = {
    "versionadded": "New in version {0}",
    "versionchanged": "Changed in version {0}",
    "deprecated": "Deprecated since version {0}",
    "deprecated-removed": "Deprecated since version {0}, will be removed in version {1}",
}


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _block_end(lines: Sequence[str], start: int, indent: int) -> int:
    """Index after the block that begins at ``start``: following lines that are blank or indented deeper."""
    end = start + 1
    while end < len(lines) and (not lines[end].strip() or _indent(lines[end]) > indent):
        end += 1
    return end


def _dedent(lines: Sequence[str]) -> list[str]:
    depth = min((_indent(line) for line in lines if line.strip()), default=0)
    return [line[depth:] for line in lines]


def _directive(name: str, args: str, block: list[str]) -> list[str]:
    """Paragraphs of one directive: ``args`` is the text after ``::``, ``block`` its indented lines."""
    name = name.lower().removeprefix("py:").removeprefix("c:")
    lines = _dedent(block)
    blank = next((k for k, line in enumerate(lines) if not line.strip()), len(lines))
    header = [line for line in lines[:blank] if not _FIELD.match(line)]  # arguments continued, no options
    body = lines[blank:]
    arg_text = " ".join([args.strip(), *(line.strip() for line in header)]).strip()
    if name in _ADMONITIONS:
        return rst_paragraphs([args.strip(), *header, "", *body])
    if name in _DESCRIPTIONS:
        return rst_paragraphs(body)
    if name in _TITLED:
        return [arg_text, *rst_paragraphs(body)] if arg_text else rst_paragraphs(body)
    if name == "availability":
        return [f"Availability: {arg_text.rstrip('.')}."]
    if name in _VERSIONS:
        words = arg_text.split()
        count = 2 if name == "deprecated-removed" else 1
        label = _VERSIONS[name].format(*words[:count], "?", "?")
        rest = " ".join(words[count:])
        content = rst_paragraphs([rest, "", *body] if rest else body)
        return [f"{label}: {content[0]}", *content[1:]] if content else [f"{label}."]
    return []


def _literal_marker(text: str) -> str:
    """A paragraph ending in ``::`` minus the marker: "Example::" -> "Example:", "Example ::" -> "Example"."""
    if text == "::":
        return ""
    return text[:-2].rstrip() if text[-3].isspace() else text[:-1]


def rst_paragraphs(lines: Sequence[str]) -> list[str]:
    """The prose paragraphs and headings of reST ``lines`` (inline markup still in them), one string each.

    Kept: paragraphs, headings (adornment dropped), list items, definition-list terms and definitions,
    the prose inside descriptions (function, class ...) and admonitions (note, seealso ...), version notes
    as Sphinx words them ("Changed in version 3.3: ..."). Dropped: comments, targets, substitution and
    footnote definitions, field lists, other directives with their content, literal blocks (after ``::``),
    doctest blocks (``>>>``), simple and grid tables, transitions.
    """
    paragraphs: list[str] = []
    i, n = 0, len(lines)
    while i < n:
        line, indent = lines[i], _indent(lines[i])
        nxt = lines[i + 1] if i + 1 < n else ""
        if not line.strip():
            i += 1
        elif directive := _DIRECTIVE.match(line):
            end = _block_end(lines, i, indent)
            paragraphs += _directive(directive["name"], directive["args"], list(lines[i + 1 : end]))
            i = end
        elif _EXPLICIT.match(line) or _FIELD.match(line):
            i = _block_end(lines, i, indent)
        elif _SIMPLE_TABLE.match(line):
            i += 1
            while i < n and not (_SIMPLE_TABLE.match(lines[i]) and (i + 1 == n or not lines[i + 1].strip())):
                i += 1
            i += 1
        elif _GRID_TABLE.match(line):
            while i < n and lines[i].strip():
                i += 1
        elif _ADORNMENT.match(line):  # overlined heading, else a transition
            overlined = i + 2 < n and lines[i + 2].strip() == line.strip() and nxt.strip()
            if overlined:
                paragraphs.append(nxt.strip())
            i += 3 if overlined else 1
        elif _ADORNMENT.match(nxt) and (not _BULLET.match(line) or len(nxt.strip()) >= len(line.strip())):
            paragraphs.append(line.strip())  # underlined heading
            i += 2
        elif line.lstrip().startswith(">>>"):  # doctest block
            while i < n and lines[i].strip():
                i += 1
        elif bullet := _BULLET.match(line):  # list item: its lines, marker blanked, cleaned on their own
            end = i + 1
            while end < n and (not lines[end].strip() or _indent(lines[end]) >= bullet.end()):
                end += 1
            item = [" " * bullet.end() + line[bullet.end() :], *lines[i + 1 : end]]
            paragraphs += rst_paragraphs(_dedent(item))
            i = end
        else:
            i = _paragraph(lines, i, paragraphs)
    return paragraphs


def _paragraph(lines: Sequence[str], i: int, paragraphs: list[str]) -> int:
    """Append the paragraph (same-indent lines) at ``i``, skip a literal block after it; the next index."""
    indent, words = _indent(lines[i]), [lines[i].strip()]
    i += 1
    while i < len(lines) and lines[i].strip() and _indent(lines[i]) == indent:
        if _EXPLICIT.match(lines[i]):
            break
        words.append(lines[i].strip())
        i += 1
    text = " ".join(words)
    if text.endswith("::"):  # a literal block follows: everything indented deeper than this paragraph
        text = _literal_marker(text)
        while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > indent):
            i += 1
    if text:
        paragraphs.append(text)
    return i


_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f\x85\u2028\u2029]")
_TARGET = re.compile(r"^\.\.\s+_(?P<label>`[^`]+`|[^:`]+):\s*$")


def _lines(text: str) -> list[str]:
    """Lines with newlines normalised, tabs expanded and control characters (form feed ...) made spaces."""
    return _CONTROL.sub(" ", text.replace("\r\n", "\n").replace("\r", "\n").expandtabs(8)).split("\n")


def section_labels(text: str) -> dict[str, str]:
    """{label: plain section title} for the ``.. _label:`` targets placed just before a heading.

    Sphinx shows that title for ``:ref:`label```; labels are lower-cased, as Sphinx does.
    """
    lines, labels, pending = _lines(text), {}, []
    for i, line in enumerate(lines):
        if target := _TARGET.match(line):
            pending.append(target["label"].strip("`").lower())
        elif line.strip():
            nxt = lines[i + 1] if i + 1 < len(lines) else ""
            title = lines[i + 1] if _ADORNMENT.match(line) and i + 1 < len(lines) else line
            if pending and (_ADORNMENT.match(line) or _ADORNMENT.match(nxt)) and title.strip():
                labels.update(dict.fromkeys(pending, clean_inline(title)))
            pending = []
    return labels


def clean_rst(text: str, labels: Mapping[str, str] | None = None) -> str:
    """Plain English from reStructuredText: one paragraph or heading per line, a blank line between them.

    ``labels`` resolves untitled ``:ref:`` roles (:func:`section_labels` of all files). Deterministic; the
    result has no tabs, no control characters (so no form feed) and no trailing newline.
    """
    paragraphs = (clean_inline(p, labels) for p in rst_paragraphs(_lines(text)))
    return "\n\n".join(p for p in paragraphs if p)


# ---------------------------------------------------------------------------------------- the split


def is_heldout(relative_path: str, per_mille: int = HELDOUT_PER_MILLE) -> bool:
    """Whether a source file is held out: the first 8 bytes of sha256(path) modulo 1000 < ``per_mille``.

    Depends only on the relative POSIX path (e.g. ``"library/functools.rst.txt"``), so the split is the
    same on every machine and does not move when files are added or removed.
    """
    digest = hashlib.sha256(relative_path.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % 1000 < per_mille


def split_paths(paths: Sequence[str], per_mille: int = HELDOUT_PER_MILLE) -> tuple[list[str], list[str]]:
    """(train, heldout) relative paths, each sorted."""
    ordered = sorted(paths)
    return (
        [p for p in ordered if not is_heldout(p, per_mille)],
        [p for p in ordered if is_heldout(p, per_mille)],
    )


# ------------------------------------------------------------------------------------------ files


def write_documents(path: Path, documents: Sequence[str]) -> str:
    """Write ``documents`` (each followed by :data:`DOC_SEPARATOR`); returns the file's sha256."""
    if any("\f" in doc for doc in documents):
        raise ValueError("a document contains a form feed, the document separator")
    data = "".join(doc + DOC_SEPARATOR for doc in documents).encode("utf-8")
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def read_documents(path: str | Path) -> list[str]:
    """The documents of a ``train.txt`` / ``heldout.txt`` file, in order."""
    text = Path(path).read_text(encoding="utf-8")
    if text and not text.endswith(DOC_SEPARATOR):
        raise CorpusError(f"{path} does not end with the document separator; was it written by prepare?")
    return text.split(DOC_SEPARATOR)[:-1]


def _sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _read_manifest(data: Path) -> dict[str, Any]:
    path = data / "manifest.json"
    if not path.is_file():
        raise CorpusError(f"no {path}; run: python -m minihymba.corpus prepare --out {data}")
    return json.loads(path.read_text(encoding="utf-8"))


def prepare(out: Path, sources: Path = SOURCES_DIR, *, allow_other_version: bool = False) -> dict[str, Any]:
    """Clean every source file, split by file and write ``train.txt``, ``heldout.txt``, ``manifest.json``."""
    version = check_sources(sources, allow_other_version=allow_other_version)
    paths = source_files(sources)
    raw = {relative: _read_source(sources, relative) for relative in paths}
    raw_digest = hashlib.sha256()
    for relative, text in raw.items():
        raw_digest.update(f"{relative}\0{hashlib.sha256(text.encode('utf-8')).hexdigest()}\n".encode())
    labels = {label: title for text in raw.values() for label, title in section_labels(text).items()}
    documents: dict[str, str] = {}
    empty = []
    for relative in paths:
        if relative in EXCLUDED:
            continue
        cleaned = clean_rst(raw[relative], labels)
        if cleaned:
            documents[relative] = cleaned
        else:
            empty.append(relative)
    train, heldout = split_paths(list(documents))
    out.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {
        "source": {
            "package": DEBIAN_PACKAGE,
            "version": version,
            "install": APT_COMMAND,
            "directory": str(sources),
            "files": len(paths),
            "sha256_of_sources": raw_digest.hexdigest(),  # over "path\0sha256(file)\n" lines, sorted paths
        },
        "excluded": {p: EXCLUDED[p] for p in paths if p in EXCLUDED},
        "empty_after_cleaning": empty,
        "split": {
            "rule": "sha256(relative path)[:8] as big-endian int % 1000 < per_mille",
            "per_mille": HELDOUT_PER_MILLE,
        },
        "files": {"train": len(train), "heldout": len(heldout)},
        "heldout_files": heldout,
        "chars": {},
        "sha256": {},
    }
    for name, split in (("train", train), ("heldout", heldout)):
        docs = [documents[p] for p in split]
        manifest["sha256"][f"{name}.txt"] = write_documents(out / f"{name}.txt", docs)
        manifest["chars"][name] = sum(len(d) for d in docs)
    _write_json(out / "manifest.json", manifest)
    return manifest


# -------------------------------------------------------------------------------------- tokenizer


def build_tokenizer(documents: Sequence[str], vocab_size: int = 4096) -> Any:
    """A byte-level BPE (``tokenizers.Tokenizer``) trained on ``documents``; BOS is added on encode.

    Byte level: every string encodes (no unknown token) and decodes back exactly (no normaliser). Ids 0-2
    are :data:`SPECIAL_TOKENS`, then the 256 byte symbols, then ``vocab_size - 259`` merges.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    if vocab_size < 259 + 1:
        raise ValueError(f"vocab_size must exceed 259 (3 special tokens + 256 bytes), got {vocab_size}")
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(documents, trainer=trainer, length=len(documents))
    bos, eos = SPECIAL_TOKENS[BOS_ID], SPECIAL_TOKENS[EOS_ID]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {eos} $B", special_tokens=[(bos, BOS_ID), (eos, EOS_ID)]
    )
    return tokenizer


def save_tokenizer(tokenizer: Any, out: Path) -> None:
    """Write ``tokenizer.json``, ``tokenizer_config.json`` and ``special_tokens_map.json`` (hub layout)."""
    ids = [tokenizer.token_to_id(t) for t in SPECIAL_TOKENS]
    if ids != [PAD_ID, BOS_ID, EOS_ID]:
        raise ValueError(f"special tokens {SPECIAL_TOKENS} must have ids 0, 1, 2; got {ids}")
    out.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(out / "tokenizer.json"))
    special = dict(zip(("pad_token", "bos_token", "eos_token"), SPECIAL_TOKENS, strict=True))
    config = {"tokenizer_class": "PreTrainedTokenizerFast", **special, "clean_up_tokenization_spaces": False}
    _write_json(out / "tokenizer_config.json", config)
    _write_json(out / "special_tokens_map.json", special)


def train_tokenizer(data: Path, out: Path = TOKENIZER_DIR, vocab_size: int = 4096) -> str:
    """Train on ``data/train.txt`` only, save to ``out``; returns the sha256 of ``tokenizer.json``."""
    path = data / "train.txt"
    if not path.is_file():
        raise CorpusError(f"no {path}; run: python -m minihymba.corpus prepare --out {data}")
    save_tokenizer(build_tokenizer(read_documents(path), vocab_size), out)
    return _sha256_file(out / "tokenizer.json")


# ------------------------------------------------------------------------------------ token streams


def encode_documents(tokenizer: Any, documents: Sequence[str]) -> Tensor:
    """One 1-D int32 stream: each document's tokens (no BOS) followed by EOS."""
    encodings = tokenizer.encode_batch(list(documents), add_special_tokens=False)
    stream = [token for enc in encodings for token in (*enc.ids, EOS_ID)]
    return torch.tensor(stream, dtype=torch.int32)


def load_tokens(path: str | Path) -> Tensor:
    """The token stream stored by :func:`encode` (1-D int32)."""
    from safetensors.torch import load_file

    return load_file(str(path))["tokens"]


def encode(data: Path, tokenizer_dir: Path = TOKENIZER_DIR) -> dict[str, Any]:
    """Write ``{train,heldout}_tokens.safetensors`` in ``data``; add counts and the unigram baseline."""
    from safetensors.torch import save_file
    from tokenizers import Tokenizer

    manifest = _read_manifest(data)
    tokenizer = Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json"))
    streams = {}
    for name in ("train", "heldout"):
        streams[name] = encode_documents(tokenizer, read_documents(data / f"{name}.txt"))
        path = data / f"{name}_tokens.safetensors"
        save_file({"tokens": streams[name]}, str(path), metadata={"format": "pt"})
        manifest["sha256"][path.name] = _sha256_file(path)
    vocab_size = tokenizer.get_vocab_size()
    manifest["tokenizer"] = {
        "directory": tokenizer_dir.name,
        "vocab_size": vocab_size,
        "sha256_tokenizer_json": _sha256_file(tokenizer_dir / "tokenizer.json"),
    }
    manifest["tokens"] = {name: int(s.numel()) for name, s in streams.items()}
    manifest["chars_per_token"] = {
        name: round(manifest["chars"][name] / (s.numel() - (s == EOS_ID).sum().item()), 4)
        for name, s in streams.items()
    }
    baseline = unigram_loss(streams["train"], streams["heldout"], vocab_size)
    manifest["unigram_loss_heldout"] = round(baseline, 6)
    _write_json(data / "manifest.json", manifest)
    return manifest


# ------------------------------------------------------------------------------------------ batches


def _batch_generator(seed: int, step: int) -> torch.Generator:
    """A generator seeded from sha256 of (seed, step): distinct pairs never share a stream by accident."""
    digest = hashlib.sha256(f"minihymba.corpus.lm_batch:{int(seed)}:{int(step)}".encode()).digest()
    generator = torch.Generator()
    generator.manual_seed(int.from_bytes(digest[:8], "big"))
    return generator


def _check_stream(tokens: Tensor, seq_len: int) -> None:
    if tokens.dim() != 1 or tokens.dtype.is_floating_point:
        raise ValueError(f"tokens must be a 1-D integer tensor, got {tokens.dtype} {tuple(tokens.shape)}")
    if seq_len < 1 or tokens.numel() < seq_len:
        raise ValueError(f"need 1 <= seq_len <= len(tokens); got seq_len={seq_len}, len={tokens.numel()}")


def lm_batch(
    tokens: Tensor, batch_size: int, seq_len: int, seed: int, step: int, *, bos_id: int = BOS_ID
) -> tuple[Tensor, Tensor]:
    """A training batch ``(input_ids, targets)``, both (B, T) int64, that depends only on (seed, step).

    Each row is a window of ``T`` stream tokens at a uniformly random offset: ``targets`` is the window,
    ``input_ids`` is BOS followed by the window's first ``T - 1`` tokens, so ``targets[:, t]`` is the token
    after ``input_ids[:, t]`` and every sequence starts with BOS at position 0 (the attention sink). Windows
    may cross document ends (EOS). The offsets come from a CPU ``torch.Generator`` seeded by a hash of
    (seed, step), so resuming at ``step`` gives the same batches as an uninterrupted run.
    """
    _check_stream(tokens, seq_len)
    generator = _batch_generator(seed, step)
    offsets = torch.randint(0, tokens.numel() - seq_len + 1, (batch_size,), generator=generator)
    targets = tokens[offsets[:, None] + torch.arange(seq_len)].long()  # (B, T): row b = s[o_b : o_b + T]
    bos = torch.full((batch_size, 1), bos_id, dtype=torch.long)
    return torch.cat([bos, targets[:, :-1]], dim=1), targets


def heldout_batches(
    tokens: Tensor, batch_size: int, seq_len: int, *, bos_id: int = BOS_ID
) -> Iterator[tuple[Tensor, Tensor]]:
    """Evaluation batches: the stream cut into ``len(tokens) // T`` back-to-back windows, in order.

    Rows are built as in :func:`lm_batch` (BOS + window[:-1] -> window), so every held-out token except the
    last ``len(tokens) % T`` is scored exactly once. The last batch may have fewer than ``batch_size`` rows.
    """
    _check_stream(tokens, seq_len)
    windows = tokens[: tokens.numel() // seq_len * seq_len].long().view(-1, seq_len)
    for start in range(0, windows.shape[0], batch_size):
        targets = windows[start : start + batch_size]
        bos = torch.full((targets.shape[0], 1), bos_id, dtype=torch.long)
        yield torch.cat([bos, targets[:, :-1]], dim=1), targets


def unigram_loss(
    train_tokens: Tensor, heldout_tokens: Tensor, vocab_size: int, *, bos_id: int = BOS_ID
) -> float:
    """Cross-entropy (nats/token) of held-out tokens under add-one-smoothed unigram counts from train.

    ``p(v) = (count_train(v) + 1) / (N_train + vocab_size)``, averaged over the held-out tokens. BOS is not
    counted nor scored (it is never a target of the LM loss either); EOS is, like any token.
    """
    train = train_tokens.long().flatten()
    heldout = heldout_tokens.long().flatten()
    train, heldout = train[train != bos_id], heldout[heldout != bos_id]
    counts = torch.bincount(train, minlength=vocab_size).double() + 1.0
    log_probs = counts.log() - math.log(counts.sum().item())
    return -log_probs[heldout].mean().item()


# -------------------------------------------------------------------------------- held-out sample


def sample_windows(seq_len: int, tokenizer_dir: str | Path = TOKENIZER_DIR) -> Tensor:
    """The shipped held-out sample (``heldout_sample.txt`` next to the tokenizer) as model inputs (N, T): its
    paragraphs encoded as one document (blank lines between paragraphs, as inside a training document),
    cut into back-to-back windows, each BOS + ``T - 1`` tokens -- the layout of :func:`heldout_batches`.
    Needs no corpus on disk (the sample is committed), so notebooks and tests can use it anywhere."""
    stream = _sample_stream(tokenizer_dir)
    return next(heldout_batches(stream, batch_size=stream.numel(), seq_len=seq_len))[0]


def _sample_stream(tokenizer_dir: str | Path) -> Tensor:
    """The shipped held-out sample encoded as one document, (n,) int32 (no BOS, EOS at the end)."""
    from tokenizers import Tokenizer

    directory = Path(tokenizer_dir)
    tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
    text = (directory / "heldout_sample.txt").read_text(encoding="utf-8")
    return encode_documents(tokenizer, [text.rstrip("\n")])


def sample_corpus(out: str | Path, tokenizer_dir: str | Path = TOKENIZER_DIR) -> Path:
    """A miniature corpus directory made from the shipped held-out sample, for smoke tests without the
    Debian package: ``train_tokens.safetensors`` (the sample's first three quarters of tokens) and
    ``heldout_tokens.safetensors`` (the last quarter), laid out like :func:`encode`'s. Training on it
    means nothing (a few thousand tokens of *held-out* text); it only lets the text pipeline run in CI.
    Returns ``out``."""
    from safetensors.torch import save_file

    out = Path(out)
    stream = _sample_stream(tokenizer_dir)  # (n,) int32
    cut = stream.numel() * 3 // 4
    out.mkdir(parents=True, exist_ok=True)
    for name, part in (("train", stream[:cut]), ("heldout", stream[cut:])):
        path = out / f"{name}_tokens.safetensors"
        save_file({"tokens": part.contiguous()}, str(path), metadata={"format": "pt"})
    return out


def heldout_sample(documents: Sequence[str], paragraphs: int = 40, per_document: int = 2) -> str:
    """A few KB of held-out prose: the first ``per_document`` prose-like paragraphs of each document.

    Prose-like: 120-400 characters and ending with a full stop. Documents in file order, at most
    ``paragraphs`` in all; joined by blank lines, with a final newline.
    """
    chosen: list[str] = []
    for doc in documents:
        prose = [p for p in doc.split("\n\n") if 120 <= len(p) <= 400 and p.endswith(".")]
        chosen += prose[:per_document]
    return "\n\n".join(chosen[:paragraphs]) + "\n"


def write_assets(data: Path, out: Path = TOKENIZER_DIR, paragraphs: int = 40) -> str:
    """Write ``heldout_sample.txt`` and ``corpus_manifest.json`` (the final manifest) into ``out``.

    Run after ``encode``. The sample's sha256 is added to the manifest first; returns it.
    """
    manifest = _read_manifest(data)
    if "tokens" not in manifest:
        raise CorpusError(f"{data}/manifest.json has no token counts; run: python -m minihymba.corpus encode")
    out.mkdir(parents=True, exist_ok=True)
    sample = out / "heldout_sample.txt"
    sample.write_text(heldout_sample(read_documents(data / "heldout.txt"), paragraphs), encoding="utf-8")
    manifest["sha256"][sample.name] = _sha256_file(sample)
    _write_json(data / "manifest.json", manifest)
    _write_json(out / "corpus_manifest.json", manifest)
    return manifest["sha256"][sample.name]


# ------------------------------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m minihymba.corpus`` parser (prepare, tokenizer, encode, sample)."""
    parser = argparse.ArgumentParser(
        prog="python -m minihymba.corpus",
        description="Build the tiny text corpus from the Debian python3.11-doc sources, its tokenizer and "
        "token streams. Run the steps in order: prepare, tokenizer, encode, sample.",
    )
    steps = parser.add_subparsers(dest="step", required=True, metavar="STEP")
    assets = "minihymba/assets/tiny-text"
    data_help = "the directory written by prepare (e.g. data/pydoc)"

    p = steps.add_parser("prepare", help="clean the reST sources into train.txt, heldout.txt, manifest.json")
    p.add_argument("--out", type=Path, required=True, help="output directory (e.g. data/pydoc)")
    p.add_argument(
        "--sources",
        type=Path,
        default=SOURCES_DIR,
        help=f"the package's reST sources (default: {SOURCES_DIR}, installed by: {APT_COMMAND})",
    )
    p.add_argument(
        "--allow-other-version",
        action="store_true",
        help=f"build even if {DEBIAN_PACKAGE} is not {DEBIAN_VERSION} (the checksums will then differ)",
    )

    t = steps.add_parser("tokenizer", help="train the byte-level BPE on train.txt, save it in the hub layout")
    t.add_argument("--data", type=Path, required=True, help=data_help)
    t.add_argument("--out", type=Path, default=TOKENIZER_DIR, help=f"tokenizer directory (default: {assets})")
    t.add_argument(
        "--vocab-size", type=int, default=4096, help="tokens, incl. 3 special + 256 bytes (default: 4096)"
    )

    e = steps.add_parser("encode", help="write the token streams; add token counts and the unigram baseline")
    e.add_argument("--data", type=Path, required=True, help=data_help)
    e.add_argument("--tokenizer", type=Path, default=TOKENIZER_DIR, help=f"tokenizer (default: {assets})")

    s = steps.add_parser(
        "sample",
        help="write heldout_sample.txt (a few KB of held-out prose) and a copy of "
        "manifest.json (corpus_manifest.json): the files committed for offline use",
    )
    s.add_argument("--data", type=Path, required=True, help=data_help)
    s.add_argument("--out", type=Path, default=TOKENIZER_DIR, help=f"where to write it (default: {assets})")
    s.add_argument("--paragraphs", type=int, default=40, help="number of paragraphs (default: 40)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one pipeline step; problems are reported on one line with exit code 2."""
    args = build_parser().parse_args(argv)
    start = time.perf_counter()
    try:
        if args.step == "prepare":
            m = prepare(args.out, args.sources, allow_other_version=args.allow_other_version)
            print(f"files {m['files']}, chars {m['chars']}, sha256 {m['sha256']} -> {args.out}")
        elif args.step == "tokenizer":
            digest = train_tokenizer(args.data, args.out, args.vocab_size)
            print(f"tokenizer.json sha256 {digest} -> {args.out}")
        elif args.step == "encode":
            m = encode(args.data, args.tokenizer)
            print(f"tokens {m['tokens']}, unigram loss (held-out) {m['unigram_loss_heldout']} nats/token")
        else:
            digest = write_assets(args.data, args.out, args.paragraphs)
            print(f"heldout_sample.txt sha256 {digest}, corpus_manifest.json -> {args.out}")
    except CorpusError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{args.step}: {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
