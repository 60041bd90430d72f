"""The lexicon / n-gram LM beam search (flashlight-text through asr.decoding.lm_decoder) and its file checks."""

import gzip
import math
import random

import pytest
import torch

from asr.decoding import greedy_search
from asr.decoding.lexicon import LexiconError, read_lexicon, spell_words, write_lexicon
from asr.decoding.lm import KENLM_BINARY_MAGIC, LMError, read_lm_info
from asr.decoding.lm_decoder import LMDecoder, LMDecoderConfig
from asr.text.chars import CharTokenizer
from asr.text.phones import PhoneTokenizer
from tests.asr.lm._lm_fixtures import spelled_log_probs, tiny_lm

TOK = CharTokenizer()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return tiny_lm(tmp_path_factory.mktemp("lm"))


@pytest.fixture(scope="module")
def decoder(files):
    arpa, lexicon = files
    return LMDecoder(LMDecoderConfig(lm=str(arpa), lexicon=str(lexicon), lm_weight=1.0, word_score=0.0), TOK)


def test_lexicon_and_lm_correct_a_misspelling(decoder):
    lp = spelled_log_probs("THE CAT SAD ON THE MAT")  # acoustically "SAD": not a word of the lexicon
    assert TOK.decode(greedy_search(lp).tokens) == "THE CAT SAD ON THE MAT"
    hyp = decoder.decode(lp)
    assert hyp.text(TOK) == "THE CAT SAT ON THE MAT"
    assert [w.text for w in hyp.words] == "THE CAT SAT ON THE MAT".split()


def test_words_carry_frames_and_confidences(decoder):
    # frames: blank, then per letter 2 frames + 1 blank: "GO" = G at 1, O at 4; "|" at 7; "BACK" from 10
    hyp = decoder.decode(spelled_log_probs("GO BACK", peak=0.95))
    go, back = hyp.words
    assert (go.text, go.start, go.end) == ("GO", 1, 5)
    assert (back.text, back.start, back.end) == ("BACK", 10, 20)
    assert all(0.9 < w.confidence <= 1.0 for w in hyp.words)
    assert len(hyp.tokens) == len(hyp.frames) == len(hyp.confidences)
    assert TOK.decode(hyp.tokens) == "GO BACK"


@pytest.mark.parametrize("commit_every", [3, 100])
@pytest.mark.parametrize("sizes", [[1], [4], [7, 1, 3], [1000]], ids=["1", "4", "irregular", "all"])
def test_chunked_steps_equal_one_decode(files, commit_every, sizes):
    arpa, lexicon = files
    d = LMDecoder(LMDecoderConfig(lm=str(arpa), lexicon=str(lexicon), commit_every=commit_every), TOK)
    lp = spelled_log_probs("THE DOG RAN AWAY A RED CAT SAT ON THE LOG", peak=0.6, seed=3)
    full = d.decode(lp)
    state, i, k = d.init_state(), 0, 0
    while i < lp.shape[0]:
        n = sizes[k % len(sizes)]
        state = d.step(lp[i : i + n], state)
        partial = d.best(state)  # reading partials never changes the search
        assert partial.frames == tuple(sorted(partial.frames))
        i, k = i + n, k + 1
    assert d.finish(state) == full
    assert len(full.words) == 11


def test_commits_keep_memory_bounded(files):
    arpa, lexicon = files
    lp = torch.cat([spelled_log_probs("THE CAT SAT ON THE MAT", seed=s) for s in range(6)])
    often = LMDecoder(LMDecoderConfig(lm=str(arpa), lexicon=str(lexicon), commit_every=5, history_frames=20), TOK)
    never = often.with_options(commit_every=10**9)
    state, i = often.init_state(), 0
    while i < lp.shape[0]:
        state = often.step(lp[i : i + 8], state)
        assert state.frame - state.base <= 20 + 5 + 40  # history kept: 20 frames, back to a word boundary
        assert state.log_probs.shape[0] <= state.frame - state.base + 1
        i += 8
    hyp = often.finish(state)
    assert hyp.text(TOK) == " ".join(["THE CAT SAT ON THE MAT"] * 6) == never.decode(lp).text(TOK)
    assert hyp.words == never.decode(lp).words


def test_stale_and_finished_states_are_refused(decoder):
    lp = spelled_log_probs("THE CAT")
    s0 = decoder.init_state()
    s1 = decoder.step(lp[:5], s0)
    with pytest.raises(ValueError, match="stale"):
        decoder.step(lp[5:], s0)
    decoder.finish(s1)
    with pytest.raises(ValueError, match="finished"):
        decoder.step(lp[5:], s1)


def test_lexicon_without_lm_only_spells_known_words(files):
    _, lexicon = files
    d = LMDecoder(LMDecoderConfig(lexicon=str(lexicon), word_score=-1.0), TOK)
    assert d.mode == "lexicon"
    hyp = d.decode(spelled_log_probs("GO FORWRD TEN METERS", peak=0.7))
    words = {w for s in ["GO FORWARD TEN METERS GO BACK TWO TURN LEFT"] for w in s.split()}
    assert hyp.words and all(w.text in words | set(read_lexicon(lexicon, TOK).words) for w in hyp.words)
    assert "FORWRD" not in hyp.text(TOK)


def test_lexicon_without_lm_breaks_exact_ties_the_same_way_every_time(tmp_path):
    # "BETHE" spelled with no word boundary: BE THE, BET HE, BE THE and BETH E... cost exactly the same acoustically
    # and per word, so only the tie-break decides; under flashlight's ZeroLM that followed memory addresses and
    # varied between decodes and chunkings
    words = ["A", "BE", "BET", "BETH", "E", "EB", "H", "HE", "T", "THE", "THEB"]
    lexicon, missing = spell_words(words, TOK)
    assert not missing
    write_lexicon(tmp_path / "lex.txt", lexicon)
    lp = spelled_log_probs("BETHEBETHEBETHEBETHEBETHEBETHE", peak=0.95)
    texts = set()
    for _ in range(6):  # fresh decoders: fresh allocations
        d = LMDecoder(LMDecoderConfig(lexicon=str(tmp_path / "lex.txt"), word_score=0.0, beam_size=8), TOK)
        texts.add(d.decode(lp).text(TOK))
        for chunk in (1, 2, 3, 5, 7):
            state = d.init_state()
            for i in range(0, lp.shape[0], chunk):
                state = d.step(lp[i : i + chunk], state)
            texts.add(d.finish(state).text(TOK))
    assert len(texts) == 1, texts
    assert set(texts.pop().split()) <= set(words)


def test_lexicon_free_with_a_token_lm(tmp_path):
    from asr.lm.build import train_arpa

    text = tmp_path / "tokens.txt"
    text.write_text("".join(" ".join("|" if c == " " else c for c in s) + "\n" for s in ["THE CAT SAT"] * 3))
    arpa = train_arpa(text, tmp_path / "chars.arpa", order=4)
    d = LMDecoder(LMDecoderConfig(lm=str(arpa), lm_weight=1.0), TOK)
    assert d.mode == "lexicon-free"
    hyp = d.decode(spelled_log_probs("THE CAT SAT", peak=0.8))
    assert hyp.words is None and hyp.text(TOK) == "THE CAT SAT"


def test_phone_model_with_a_cmudict_lexicon(tmp_path):
    tok = PhoneTokenizer()  # no word boundary token: the blank stands for silence between words
    lexicon, missing = spell_words(["CAT", "SAT", "THE", "MAT"], tok)
    assert not missing and ("K", "AE", "T") in lexicon.entries["CAT"]
    write_lexicon(tmp_path / "phones.lex", lexicon)
    d = LMDecoder(LMDecoderConfig(lexicon=str(tmp_path / "phones.lex")), tok)
    ids = tok.tokens
    rows = [ids.index(p) for p in "DH AH K AE T S AE T".split()]
    lp = torch.full((2 * len(rows) + 1, len(ids)), math.log(0.01 / (len(ids) - 1)))
    for i, r in enumerate(rows):
        lp[2 * i + 1, r] = math.log(0.99)
        lp[2 * i + 2, 0] = math.log(0.99)
    lp[0, 0] = math.log(0.99)
    assert d.decode(lp).text(tok) == "THE CAT SAT"


def test_homophones_beyond_the_trie_limit_keep_the_likely_words(tmp_path, capfd):
    # flashlight's trie holds 6 words per spelling and drops the rest with a print: eight words spelled C A T,
    # the likeliest (HH, GG) last in the file, must be the ones that survive, and nothing is printed
    from asr.lm.build import train_arpa

    words = ["AA", "BB", "CC", "DD", "EE", "FF", "GG", "HH"]
    (tmp_path / "lex.txt").write_text("".join(f"{w}\tC A T\n" for w in words))
    for likely, other in (("HH", "GG"), ("GG", "HH")):  # the likelier word wins wherever it is in the file
        text = tmp_path / "text.txt"
        text.write_text(f"{likely}\n" * 9 + f"{other}\n" * 5 + "".join(f"{w}\n" for w in words))
        arpa = train_arpa(text, tmp_path / f"{likely}.arpa", order=2)
        d = LMDecoder(LMDecoderConfig(lm=str(arpa), lexicon=str(tmp_path / "lex.txt"), lm_weight=1.0), TOK)
        assert d.decode(spelled_log_probs("CAT")).text(TOK) == likely
    assert "Trie label number reached limit" not in "".join(capfd.readouterr())


# -- file checks: a clear error naming the file and line, before any audio ------------------------------------------


def test_lexicon_errors_name_file_and_line(tmp_path):
    missing = tmp_path / "nope.txt"
    with pytest.raises(LexiconError, match="does not exist"):
        read_lexicon(missing, TOK)
    bad = tmp_path / "bad.txt"
    bad.write_text("CAT\tC A T\nDOG\td o g\n")
    with pytest.raises(LexiconError, match=r"bad.txt:2: word 'DOG' is spelled with \['d', 'g', 'o'\]"):
        read_lexicon(bad, TOK)
    bad.write_text("CAT\tC A T\n\nLONE\n")
    with pytest.raises(LexiconError, match=r"bad.txt:3: word 'LONE' has no spelling"):
        read_lexicon(bad, TOK)
    bad.write_text("\n\n")
    with pytest.raises(LexiconError, match="no entries"):
        read_lexicon(bad, TOK)
    bad.write_bytes(b"CAT\tC A T\n\xff\xfe\n")
    with pytest.raises(LexiconError, match="not UTF-8"):
        read_lexicon(bad, TOK)


def test_lexicon_reads_gzip_and_torchaudio_style_trailing_boundary(tmp_path):
    path = tmp_path / "lex.txt.gz"
    with gzip.open(path, "wt") as handle:
        handle.write("CAT C A T |\nCAT K A T\n")
    lex = read_lexicon(path, TOK)
    assert lex.entries == {"CAT": (("C", "A", "T"), ("K", "A", "T"))}


def _arpa_text(files):
    return files[0].read_text(encoding="latin-1")


@pytest.mark.parametrize(
    "mangle, message",
    [
        (lambda s: "hello\n" + s, r":1: not an ARPA file"),
        (lambda s: s.replace("ngram 2=", "ngram 3="), r":3: expected the count of 2-grams"),
        (lambda s: s.replace("\nngram 1=", "\nngram 1=1"), r": the header says 1\d+ unigrams"),
        (lambda s: s.replace("\\1-grams:\n", "\\1-grams:\n-1.0 A B C D\n"), r":7: a unigram line is"),
        (lambda s: s[: s.index("\\1-grams:") + 30], r": truncated .*\(the file ends inside the unigram section"),
        (lambda s: s.replace("\\3-grams:", "\\4-grams:"), r":\d+: KenLM cannot load it: Was expecting n-gram header"),
    ],
    ids=["not-arpa", "counts", "unigram-count", "unigram-line", "truncated", "kenlm-section"],
)
def test_arpa_errors_name_file_and_line(files, tmp_path, mangle, message):
    bad = tmp_path / "bad.arpa"
    bad.write_text(mangle(_arpa_text(files)), encoding="latin-1")
    with pytest.raises(LMError, match=r"bad\.arpa" + message):
        LMDecoder(LMDecoderConfig(lm=str(bad), lexicon=str(files[1])), TOK)


def test_kenlm_errors_deep_in_the_file_give_the_line(files, tmp_path):
    text = _arpa_text(files)
    lines = text.splitlines()
    target = next(i for i, ln in enumerate(lines) if ln.count(" ") == 2 and "\t" in ln)  # a trigram line
    lines[target] = "not-a-number\t" + lines[target].split("\t", 1)[1]
    bad = tmp_path / "deep.arpa"
    bad.write_text("\n".join(lines) + "\n", encoding="latin-1")
    with pytest.raises(LMError, match=rf"deep.arpa:{target + 1}: KenLM cannot load it"):
        LMDecoder(LMDecoderConfig(lm=str(bad), lexicon=str(files[1])), TOK)


def test_lm_and_lexicon_that_do_not_match(files, tmp_path):
    lower = tmp_path / "lower.arpa"
    lower.write_text(
        "\n".join(ln if ln.startswith("\\") or "=" in ln else ln.lower() for ln in _arpa_text(files).splitlines())
        + "\n",
        encoding="latin-1",
    )
    with pytest.raises(LMError, match=r"lower.arpa: only \d+ of \d+ of the words of lexicon .* not made for each"):
        LMDecoder(LMDecoderConfig(lm=str(lower), lexicon=str(files[1])), TOK)
    with pytest.raises(LMError, match="lexicon-free decoding needs an LM over the model's tokens"):
        LMDecoder(LMDecoderConfig(lm=str(files[0])), TOK)  # a word LM without a lexicon


def test_lexicon_with_tokens_the_model_lacks(files, tmp_path):
    phones = tmp_path / "phones.lex"
    phones.write_text("CAT\tK AE T\n")
    with pytest.raises(LexiconError, match=r"phones.lex:1: word 'CAT' is spelled with \['AE'\], which the model's"):
        LMDecoder(LMDecoderConfig(lm=str(files[0]), lexicon=str(phones)), TOK)


def test_binary_lm_files_are_recognised(tmp_path):
    fake = tmp_path / "lm.bin"
    fake.write_bytes(KENLM_BINARY_MAGIC + b" version 5\0" + bytes(64))
    assert read_lm_info(fake).format == "binary"
    with pytest.raises(LMError, match=r"lm\.bin(:\d+)?: KenLM cannot load it"):
        LMDecoder(LMDecoderConfig(lm=str(fake), lexicon=None), TOK)


def _not_peaky(text: str, p_blank: float = 0.6, seed: int = 0) -> torch.Tensor:
    """Log-probs spelling ``text`` whose token frames keep most of their mass on the blank (a distilled model's):
    the token at 0.25-0.35 (drawn per frame, so that no two alignments tie exactly), the blank at ``p_blank``."""
    peaky = spelled_log_probs(text, peak=0.9).exp()
    g = torch.Generator().manual_seed(seed)
    probs = peaky.clone()
    for t in range(probs.shape[0]):
        tok = int(peaky[t].argmax())
        if tok != TOK.blank_id:
            p_token = 0.25 + 0.1 * float(torch.rand((), generator=g))
            probs[t] = (1 - p_token - p_blank) / (probs.shape[1] - 2)
            probs[t, tok], probs[t, TOK.blank_id] = p_token, p_blank
    return probs.log()


def test_a_blank_penalty_keeps_the_words_of_posteriors_that_are_not_peaky(files):
    """Without a penalty the all-blank path beats every word of such posteriors; the penalty (subtracted from the
    blank's log posterior before the search) gives them back, and is the same search as on shifted log-probs."""
    arpa, lexicon = files
    plain = LMDecoder(LMDecoderConfig(lm=str(arpa), lexicon=str(lexicon), word_score=-1.0), TOK)
    lp = _not_peaky("THE CAT SAT ON THE MAT")
    assert plain.decode(lp).text(TOK) == ""
    penalised = plain.with_options(blank_penalty=2.0)
    hyp = penalised.decode(lp)
    assert hyp.text(TOK) == "THE CAT SAT ON THE MAT"
    shifted = lp.clone()
    shifted[:, TOK.blank_id] -= 2.0
    same = plain.decode(shifted)
    assert (hyp.tokens, hyp.frames, hyp.words) == (same.tokens, same.frames, same.words)
    assert hyp.confidences == same.confidences  # the tokens' own posteriors: only the blank's was moved
    assert all(0.25 <= c <= 0.35 for c in hyp.confidences)  # and those are the model's, not the search's


@pytest.mark.parametrize("sizes", [[1], [7, 1, 3]], ids=["1", "irregular"])
def test_a_blank_penalty_streams_as_it_decodes_whole(files, sizes):
    arpa, lexicon = files
    d = LMDecoder(LMDecoderConfig(lm=str(arpa), lexicon=str(lexicon), blank_penalty=1.5, commit_every=4), TOK)
    lp = torch.cat([_not_peaky("THE DOG RAN AWAY", seed=1), _not_peaky("A RED CAT SAT ON THE LOG", seed=2)])
    full = d.decode(lp)
    state, i, k = d.init_state(), 0, 0
    while i < lp.shape[0]:
        n = sizes[k % len(sizes)]
        state, i, k = d.step(lp[i : i + n], state), i + n, k + 1
    assert d.finish(state) == full and len(full.words) == 10


def test_config_checks():
    with pytest.raises(ValueError, match="blank_penalty must be finite"):
        LMDecoderConfig(lexicon="x", blank_penalty=math.inf)
    with pytest.raises(ValueError, match="needs an LM, a lexicon or both"):
        LMDecoderConfig()
    with pytest.raises(ValueError, match="beam sizes"):
        LMDecoderConfig(lexicon="x", beam_size=0)
    with pytest.raises(ValueError, match="lm_weight must be finite"):
        LMDecoderConfig(lexicon="x", lm_weight=math.nan)
    assert LMDecoderConfig(lexicon="x").mode == "lexicon"


def test_grid_of_options_shares_the_loaded_files(decoder):
    other = decoder.with_options(lm_weight=3.0, word_score=-2.0)
    assert other._res is decoder._res and other.config.lm_weight == 3.0
    with pytest.raises(ValueError, match="search options only"):
        decoder.with_options(lexicon="other.txt")
    random.seed(0)
