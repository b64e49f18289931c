"""CoNLL-U writer on hand-made tokens: sentence blocks, heads, roots, SpaceAfter, escaping."""

from __future__ import annotations

from dataclasses import dataclass

from app.domain.formats.conllu import pos_label_results, to_conllu


@dataclass(frozen=True)
class Tok:
    start: int
    end: int
    pos: str
    tag: str
    lemma: str
    dep: str
    head: int
    sentence: int
    morph: str = ""


def test_two_sentences_heads_relative_to_each_sentence() -> None:
    text = "Dogs bark. Cats\tsleep!"
    toks = [
        Tok(0, 4, "NOUN", "NNS", "dog", "nsubj", 1, 0, "Number=Plur"),
        Tok(5, 9, "VERB", "VBP", "bark", "ROOT", 1, 0),
        Tok(9, 10, "PUNCT", ".", ".", "punct", 1, 0),
        Tok(11, 15, "NOUN", "NNS", "cat", "nsubj", 4, 1),
        Tok(16, 21, "VERB", "VBP", "sleep", "ROOT", 4, 1),
        Tok(21, 22, "PUNCT", ".", "!", "punct", 4, 1),
    ]
    out = to_conllu([(text, toks)], text_ids=["doc7"])
    assert out == (
        "# sent_id = doc7-1\n# text = Dogs bark.\n"
        "1\tDogs\tdog\tNOUN\tNNS\tNumber=Plur\t2\tnsubj\t_\t_\n"
        "2\tbark\tbark\tVERB\tVBP\t_\t0\troot\t_\tSpaceAfter=No\n"
        "3\t.\t.\tPUNCT\t.\t_\t2\tpunct\t_\t_\n\n"
        "# sent_id = doc7-2\n# text = Cats sleep!\n"
        "1\tCats\tcat\tNOUN\tNNS\t_\t2\tnsubj\t_\t_\n"
        "2\tsleep\tsleep\tVERB\tVBP\t_\t0\troot\t_\tSpaceAfter=No\n"
        "3\t!\t!\tPUNCT\t.\t_\t2\tpunct\t_\t_\n\n"
    )


def test_empty_text_writes_nothing_and_ids_count_texts() -> None:
    toks = [Tok(0, 2, "INTJ", "UH", "hi", "ROOT", 0, 0)]
    out = to_conllu([("", []), ("Hi", toks)])
    assert out.startswith("# sent_id = 2-1\n# text = Hi\n1\tHi\thi\tINTJ\tUH\t_\t0\troot\t_\t_\n")


def test_pos_label_results() -> None:
    toks = [Tok(0, 3, "NOUN", "NN", "cat", "ROOT", 0, 0)]
    [r] = pos_label_results("Cat", toks, "pos", "text")
    assert r["type"] == "labels" and r["value"] == {
        "start": 0,
        "end": 3,
        "text": "Cat",
        "labels": ["NOUN"],
    }
