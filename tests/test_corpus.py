"""The text corpus (``minihymba.corpus``): reST cleaning, the split, the shipped tokenizer, batches, baseline.

Everything runs on small snippets and the committed files in ``minihymba/assets/tiny-text`` (tokenizer,
held-out sample, corpus manifest); only ``test_full_pipeline_reproduces_the_recorded_corpus`` needs the
Debian package python3.11-doc and is skipped without it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from minihymba import corpus, load_tokenizer
from minihymba.corpus import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    TOKENIZER_DIR,
    clean_inline,
    clean_rst,
    heldout_batches,
    is_heldout,
    lm_batch,
    read_documents,
    section_labels,
    split_paths,
    unigram_loss,
    write_documents,
)

SAMPLE = TOKENIZER_DIR / "heldout_sample.txt"
MANIFEST = TOKENIZER_DIR / "corpus_manifest.json"


def rst(*lines: str) -> str:
    return clean_rst("\n".join(lines))


# ------------------------------------------------------------------------------ cleaning: inline


@pytest.mark.parametrize(
    "markup, plain",
    [
        (":func:`len`", "len"),
        (":meth:`~collections.OrderedDict.popitem`", "popitem"),
        (":keyword:`!if`", "if"),
        (":c:func:`PyObject_New`", "PyObject_New"),
        (":term:`iterables <iterable>`", "iterables"),
        (":ref:`the tutorial <tut-intro>`", "the tutorial"),
        (":ref:`tut-intro`", "tut-intro"),  # no title and no known label: the label itself
        (":pep:`8`", "PEP 8"),
        (":rfc:`2822#section-3.3`", "RFC 2822"),
        (":issue:`12345`", "bpo-12345"),
        (":gh:`98765`", "gh-98765"),
        (":abbr:`EOF (End of File)`", "EOF"),
        ("``x = [1, 2]``", "x = [1, 2]"),
        ("``a\\b``", "a\\b"),  # no escapes inside literals
        ("*emphasis* and **strong**", "emphasis and strong"),
        ("*args and **kwargs are fine", "*args and **kwargs are fine"),
        ("2*3*4", "2*3*4"),
        ("`memoize <https://example.org/>`_", "memoize"),
        ("`<https://example.org/>`_", "https://example.org/"),
        ("`anonymous <https://example.org/>`__", "anonymous"),
        ("see Python_ here", "see Python here"),
        ("``__dict__`` and __slots__", "__dict__ and __slots__"),
        ("a note [1]_ and [#]_ here", "a note and here"),
        ("python|version| rocks", "python rocks"),
        ("\\*not emphasis\\*", "*not emphasis*"),
        ("func\\ ()", "func()"),
        ("`interpreted`", "interpreted"),
        ("a\n   wrapped   line", "a wrapped line"),
    ],
)
def test_inline_markup(markup, plain):
    assert clean_inline(markup) == plain


def test_untitled_ref_uses_the_section_title():
    labels = section_labels(".. _tut-intro:\n\nAn Informal Introduction\n========================\n")
    assert labels == {"tut-intro": "An Informal Introduction"}
    assert clean_inline("see :ref:`tut-intro`.", labels) == "see An Informal Introduction."
    overlined = section_labels(".. _top:\n.. _Other:\n\n*****\n:mod:`os` Title\n*****\n\ntext\n")
    assert overlined == {"top": "os Title", "other": "os Title"}
    assert section_labels(".. _fig:\n\nJust a paragraph.\n") == {}


# ------------------------------------------------------------------------------ cleaning: blocks


def test_headings_keep_text_and_drop_adornment():
    assert rst("Title", "=====", "", "Text.") == "Title\n\nText."
    assert rst("*****", "Over and under", "*****", "", "Text.") == "Over and under\n\nText."


def test_transitions_and_excess_blank_lines():
    assert rst("One.", "", "", "", "--------------", "", "", "Two.") == "One.\n\nTwo."


def test_paragraphs_are_reflowed_to_one_line():
    assert (
        rst("A paragraph", "   ", "", "wrapped over", "two lines.")
        == "A paragraph\n\nwrapped over two lines."
    )


def test_comments_targets_and_substitution_definitions_are_dropped():
    text = rst(
        ".. _label:",
        ".. A comment that goes on",
        "   for two lines.",
        ".. |name| replace:: something",
        "..",
        "   an empty comment's block",
        "",
        "Kept.",
    )
    assert text == "Kept."


def test_literal_blocks_are_dropped_and_markers_fixed():
    text = rst(
        "For example::",
        "",
        "    x = 1",
        "",
        "    y = 2",
        "",
        "Then ::",
        "",
        "  code",
        "",
        "::",
        "",
        "  more",
        "After.",
    )
    assert text == "For example:\n\nThen\n\nAfter."


def test_doctest_blocks_are_dropped():
    assert rst("Prose.", "", ">>> 1 + 1", "2", "", "More prose.") == "Prose.\n\nMore prose."


def test_code_index_and_toctree_directives_are_dropped_with_content():
    text = rst(
        ".. code-block:: python",
        "",
        "   print('hi')",
        "",
        ".. index:: single: thing",
        ".. toctree::",
        "   :maxdepth: 2",
        "",
        "   intro.rst",
        "",
        "Prose.",
    )
    assert text == "Prose."


def test_description_directives_keep_their_prose_not_the_signature():
    text = rst(
        ".. function:: cache(user_function)",
        "              cache2(x)",
        "   :noindex:",
        "",
        "   Simple lightweight :func:`cache`.",
        "",
        "   Example::",
        "",
        "      @cache",
        "      def f(): ...",
        "",
        "   .. versionadded:: 3.9",
        "",
        "Next.",
    )
    assert text == "Simple lightweight cache.\n\nExample:\n\nNew in version 3.9.\n\nNext."


def test_admonitions_version_notes_availability_and_rubric():
    text = rst(
        ".. note:: First line",
        "   continues.",
        "",
        "   Second paragraph.",
        "",
        ".. versionchanged:: 3.3",
        "   Added *x*.",
        "",
        ".. deprecated-removed:: 3.6 3.12",
        "   Use :mod:`asyncio`.",
        "",
        ".. availability:: Unix.",
        "",
        ".. rubric:: Footnotes",
    )
    assert text == (
        "First line continues.\n\nSecond paragraph.\n\nChanged in version 3.3: Added x.\n\n"
        "Deprecated since version 3.6, will be removed in version 3.12: Use asyncio.\n\n"
        "Availability: Unix.\n\nFootnotes"
    )


def test_tables_are_dropped():
    simple = ["=====  =====", "A      B", "=====  =====", "1      2", "=====  =====", ""]
    grid = ["+---+---+", "| a | b |", "+===+===+", "| 1 | 2 |", "+---+---+", ""]
    assert rst("Before.", "", *simple, *grid, "After.") == "Before.\n\nAfter."


def test_lists_nested_items_and_line_blocks():
    text = rst(
        "* First item",
        "  wraps.",
        "* Second::",
        "",
        "      code",
        "",
        "  still second.",
        "",
        "  1. nested",
        "  2. items",
        "",
        "| line one",
        "| line two",
    )
    assert text == "First item wraps.\n\nSecond:\n\nstill second.\n\nnested\n\nitems\n\nline one\n\nline two"


def test_field_lists_are_dropped_and_definition_terms_kept():
    text = rst(":Author: Someone", ":Release: |release|", "", "term", "   Its definition.")
    assert text == "term\n\nIts definition."


def test_output_has_no_control_characters_or_tabs():
    text = rst("a\tb\fc\r\nd\x00e")
    assert text == "a b c d e"
    assert clean_rst("") == ""


def test_cleaning_plain_prose_is_the_identity():
    sample = SAMPLE.read_text(encoding="utf-8").rstrip("\n")
    assert clean_rst(sample) == sample


# ------------------------------------------------------------------------------------------ split


def test_split_is_a_fixed_hash_of_the_path():
    assert is_heldout("tutorial/controlflow.rst.txt") and not is_heldout("library/functools.rst.txt")
    paths = [f"dir{i % 7}/file{i}.rst.txt" for i in range(2000)]
    train, heldout = split_paths(paths)
    assert sorted(train + heldout) == sorted(paths) and not set(train) & set(heldout)
    assert 0.03 < len(heldout) / len(paths) < 0.07
    assert split_paths(list(reversed(paths))) == (train, heldout)  # order does not matter
    fewer = split_paths(paths[:1000])  # removing files does not move the others
    assert fewer[1] == [p for p in heldout if p in set(paths[:1000])]
    assert split_paths(paths, per_mille=0)[1] == []


def test_documents_round_trip(tmp_path):
    docs = ["First doc.\n\nSecond paragraph.", "Second doc."]
    digest = write_documents(tmp_path / "x.txt", docs)
    assert read_documents(tmp_path / "x.txt") == docs and len(digest) == 64
    with pytest.raises(ValueError, match="form feed"):
        write_documents(tmp_path / "y.txt", ["bad\fdoc"])


def test_prepare_on_fake_sources(tmp_path, monkeypatch):
    sources = tmp_path / "src"
    (sources / "library").mkdir(parents=True)
    (sources / "library" / "a.rst.txt").write_text("Head\n====\n\nAlpha :func:`x`.\n")
    (sources / "tutorial").mkdir()
    (sources / "tutorial" / "controlflow.rst.txt").write_text("Held out prose.\n")  # held out by the hash
    (sources / "license.rst.txt").write_text("Legal text.\n")
    monkeypatch.setattr(corpus, "installed_version", lambda package=corpus.DEBIAN_PACKAGE: "0.0-other")
    with pytest.raises(corpus.CorpusError, match="--allow-other-version"):
        corpus.prepare(tmp_path / "out", sources)
    manifest = corpus.prepare(tmp_path / "out", sources, allow_other_version=True)
    assert manifest["files"] == {"train": 1, "heldout": 1} and manifest["source"]["version"] == "0.0-other"
    assert list(manifest["excluded"]) == ["license.rst.txt"]
    assert read_documents(tmp_path / "out" / "train.txt") == ["Head\n\nAlpha x."]
    assert read_documents(tmp_path / "out" / "heldout.txt") == ["Held out prose."]
    saved = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert saved["sha256"] == manifest["sha256"] and saved["chars"] == {"train": 14, "heldout": 15}


def test_missing_sources_name_the_apt_command(tmp_path, capsys):
    assert corpus.main(["prepare", "--out", str(tmp_path / "out"), "--sources", str(tmp_path)]) == 2
    assert "apt-get install python3.11-doc" in capsys.readouterr().err


# -------------------------------------------------------------------------------------- tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(TOKENIZER_DIR)


def test_tokenizer_loads_both_ways_with_its_special_tokens(tokenizer):
    from transformers import AutoTokenizer

    auto = AutoTokenizer.from_pretrained(str(TOKENIZER_DIR), trust_remote_code=False)
    for tok in (tokenizer, auto):
        assert len(tok) == 4096
        assert (tok.pad_token_id, tok.bos_token_id, tok.eos_token_id) == (PAD_ID, BOS_ID, EOS_ID)
        ids = tok("hello")["input_ids"]
        assert ids[0] == BOS_ID and BOS_ID not in ids[1:] and EOS_ID not in ids


def test_decode_round_trips_the_heldout_sample(tokenizer):
    text = SAMPLE.read_text(encoding="utf-8")
    assert 2000 < len(text.encode()) < 16000 and 30 <= len(text.split("\n\n")) <= 60
    ids = tokenizer(text)["input_ids"]
    assert tokenizer.decode(ids, skip_special_tokens=True) == text
    assert len(text) / (len(ids) - 1) > 3.0  # BPE merges: well above one character per token
    odd = "tabs\tand  spaces, Éléonore 景太郎 \u00a0 ok\n"
    assert tokenizer.decode(tokenizer(odd)["input_ids"], skip_special_tokens=True) == odd


def test_stream_encoding_ends_documents_with_eos():
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(TOKENIZER_DIR / "tokenizer.json"))
    stream = corpus.encode_documents(tok, ["One doc.", "Two."])
    assert stream.dtype == torch.int32 and stream.dim() == 1
    assert (stream == EOS_ID).nonzero().flatten().tolist() == [
        len(tok.encode("One doc.").ids) - 1,
        len(stream) - 1,
    ]
    assert BOS_ID not in stream.tolist()


def test_committed_files_match_the_manifest():
    manifest = json.loads(MANIFEST.read_text())
    assert manifest["source"]["version"] == corpus.DEBIAN_VERSION
    assert manifest["tokenizer"]["sha256_tokenizer_json"] == corpus._sha256_file(
        TOKENIZER_DIR / "tokenizer.json"
    )
    assert manifest["sha256"]["heldout_sample.txt"] == corpus._sha256_file(SAMPLE)
    assert manifest["files"]["heldout"] == len(manifest["heldout_files"])


# ---------------------------------------------------------------------------------------- batches


def test_lm_batch_shapes_bos_shift_and_determinism():
    stream = torch.arange(3, 1003, dtype=torch.int32)  # token value = position + 3: windows are visible
    ids, targets = lm_batch(stream, batch_size=4, seq_len=16, seed=0, step=7)
    assert ids.shape == targets.shape == (4, 16) and ids.dtype == targets.dtype == torch.long
    assert (ids[:, 0] == BOS_ID).all() and (ids[:, 1:] == targets[:, :-1]).all()
    assert (targets.diff(dim=1) == 1).all()  # each row is one contiguous window of the stream
    again = lm_batch(stream, 4, 16, seed=0, step=7)
    assert torch.equal(ids, again[0]) and torch.equal(targets, again[1])
    assert not torch.equal(targets, lm_batch(stream, 4, 16, seed=0, step=8)[1])
    assert not torch.equal(targets, lm_batch(stream, 4, 16, seed=1, step=7)[1])
    whole = lm_batch(stream[:16], 2, 16, seed=0, step=0)[1]  # the only window
    assert torch.equal(whole, stream[:16].long().expand(2, 16))
    with pytest.raises(ValueError, match="seq_len"):
        lm_batch(stream[:5], 2, 16, seed=0, step=0)


def test_heldout_batches_tile_the_stream_once():
    stream = torch.arange(10, 33)  # 23 tokens, T = 5: four windows, three tokens left over
    batches = list(heldout_batches(stream, batch_size=3, seq_len=5))
    assert [b[0].shape for b in batches] == [(3, 5), (1, 5)]
    targets = torch.cat([t for _, t in batches])
    assert torch.equal(targets.flatten(), stream[:20])
    for ids, tgt in batches:
        assert (ids[:, 0] == BOS_ID).all() and torch.equal(ids[:, 1:], tgt[:, :-1])


def test_unigram_loss_matches_the_hand_computation():
    train, heldout = torch.tensor([3, 3, 4]), torch.tensor([3, 5])
    # counts + 1 over 6 ids: [1, 1, 1, 3, 2, 1] -> total 9; p(3) = 3/9, p(5) = 1/9
    expected = -(math.log(3 / 9) + math.log(1 / 9)) / 2
    assert unigram_loss(train, heldout, vocab_size=6) == pytest.approx(expected, abs=1e-12)
    with_bos = unigram_loss(torch.tensor([BOS_ID, 3, 3, 4]), torch.tensor([BOS_ID, 3, 5]), vocab_size=6)
    assert with_bos == pytest.approx(expected, abs=1e-12)  # BOS is neither counted nor scored


# -------------------------------------------------------------------------- the real corpus (apt)


@pytest.mark.skipif(
    not corpus.SOURCES_DIR.is_dir() or corpus.installed_version() != corpus.DEBIAN_VERSION,
    reason=f"needs the Debian package {corpus.DEBIAN_PACKAGE}={corpus.DEBIAN_VERSION} "
    f"(sudo apt-get install {corpus.DEBIAN_PACKAGE})",
)
def test_full_pipeline_reproduces_the_recorded_corpus(tmp_path: Path):
    recorded = json.loads(MANIFEST.read_text())
    manifest = corpus.prepare(tmp_path)
    for key in ("files", "heldout_files", "chars", "excluded", "empty_after_cleaning"):
        assert manifest[key] == recorded[key], key
    assert manifest["source"]["sha256_of_sources"] == recorded["source"]["sha256_of_sources"]
    for name in ("train.txt", "heldout.txt"):
        assert manifest["sha256"][name] == recorded["sha256"][name], name
    digest = corpus.train_tokenizer(tmp_path, tmp_path / "tok")  # retrained: the same bytes
    assert digest == recorded["tokenizer"]["sha256_tokenizer_json"]


def test_sample_windows_are_bos_plus_the_shipped_sample_in_order():
    from minihymba.corpus import BOS_ID, EOS_ID, sample_windows

    x = sample_windows(64)
    assert x.dtype == torch.long and x.shape[1] == 64 and x.shape[0] >= 20
    assert bool((x[:, 0] == BOS_ID).all()) and not bool((x[:, 1:] == BOS_ID).any())
    assert int((x == EOS_ID).sum()) <= 1  # one document: at most its closing EOS
    longer = sample_windows(128)
    torch.testing.assert_close(longer[0, 1:64], x[0, 1:64], rtol=0, atol=0)  # same stream
