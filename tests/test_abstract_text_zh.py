"""Chinese abstract texts name ImageNet scene tags in Chinese (issue 11), and the grounding check knows those names.

The tags are MobileNetV2's 1000 labels (models/mobilenetv2/manifest.json); their Chinese names ship as package
data (argus_core/abstract/imagenet_zh.json). Pure tests: no model is run, the labels are read from the manifest.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

import pytest

from argus_core.abstract.text import Evidence, TemplateWriter, grounded, imagenet_zh, write_text

LABELS: list[str] = json.loads(
    (Path(__file__).resolve().parents[1] / "models" / "mobilenetv2" / "manifest.json").read_text())["labels"]
CJK = re.compile(r"[\u3400-\u9fff]")


def _rows() -> list[list[str]]:
    doc = json.loads(resources.files("argus_core.abstract").joinpath("imagenet_zh.json").read_text("utf-8"))
    return doc["labels"]


def test_every_manifest_label_has_a_chinese_name():
    assert len(LABELS) == 1000
    table = imagenet_zh()
    missing = [lab for lab in LABELS if not CJK.search(table.get(lab, ""))]
    assert missing == []
    # names are Chinese words, not English left in: no ASCII letters at all (they would leak into zh texts)
    assert [n for n in table.values() if re.search(r"[A-Za-z]", n)] == []


def test_rows_follow_the_manifest_index_and_split_the_shared_labels():
    rows = _rows()
    assert [en for en, _ in rows] == LABELS                 # keyed by the exact label, in index order
    zh = [n for _, n in rows]
    assert zh[134] == "鹤" and zh[517] == "起重机"             # "crane": the bird, then the machine
    assert zh[638] != zh[639]                                # "maillot": dancer's tights / swimsuit
    # apart from the shared labels, two classes never get the same Chinese name (a text could not tell them apart)
    assert len(set(zh)) == len(zh)
    assert imagenet_zh()["crane"] == "鹤或起重机"             # only the label string reaches the text


def _no_ascii_outside_quotes_and_names(text: str, ev: Evidence) -> bool:
    rest = re.sub(r"“[^”]*”", "", text)                      # OCR keyphrases are quoted verbatim
    for name in ev.names:
        rest = rest.replace(name, "")
    return not re.search(r"[A-Za-z]", rest)


def _chunks(n: int = 3) -> list[list[str]]:
    return [LABELS[i:i + n] for i in range(0, len(LABELS), n)]


def test_zh_text_names_every_tag_in_chinese():
    table = imagenet_zh()
    for k, tags in enumerate(_chunks()):
        ev = Evidence(8_000 + 1_000 * k, {"person": 3, "car": 2}, tags, 2, ["Tom Hanks"] if k % 2 else [],
                      ["EXIT 12"] if k % 3 else [], 1 + k % 4)
        text = TemplateWriter().write(ev, "zh")
        assert all(table[t] in text for t in tags), (tags, text)
        assert _no_ascii_outside_quotes_and_names(text, ev), text
        assert grounded(text, ev, "zh"), text


def test_the_issues_example_reads_in_chinese():
    ev = Evidence(30_000, {"person": 20, "boat": 5}, ["seashore", "lakeside", "valley"], 2, [], [], 3)
    text = TemplateWriter().write(ev, "zh")
    assert "海滨、湖畔、山谷" in text and "seashore" not in text


def test_english_text_is_unchanged():
    evs = [Evidence(30_000, {"person": 20, "boat": 5, "car": 2}, ["seashore", "lakeside", "valley", "alp"], 2,
                    ["Tom"], ["HELLO"], 3),
           Evidence(150_000, {"dog": 3}, ["golden retriever"], 0, [], [], 1)]
    # the texts main wrote before this change, byte for byte
    assert [TemplateWriter().write(e, "en") for e in evs] == [
        "This segment lasts about 30 seconds over 3 shots. On-screen text reads “HELLO”. The scene looks like "
        "seashore, lakeside and valley. It shows boat and car in the frames. Tom appears on screen.",
        "The clip lasts about 2 minutes 30 seconds. There are dog. The scene looks like golden retriever."]


EV = Evidence(20_000, {"person": 6, "dining table": 4}, ["seashore", "golden retriever", "tabby"], 2, [], [], 2)


class _Writer:
    def __init__(self, text: str) -> None:
        self.text = text

    def write(self, ev: Evidence, language: str = "zh") -> str:
        return self.text


@pytest.mark.parametrize("text,kept", [
    ("画面中出现了金毛寻回犬和虎斑猫，背景像是海滨。", True),     # the evidence's tags, by their Chinese names
    ("场景像是seashore。", True),                               # the English label is evidence too
    ("画面中出现了金毛寻回犬，背景像是火山。", False),            # volcano: a tag no model reported
    ("画面中出现了虎斑猫和暹罗猫。", False),                     # a tag sharing a character with a seen one
    ("画面中出现了背包。", False),                              # a name spelled only with glue characters
    ("画面中有时钟。", False),
])
def test_operator_zh_text_grounded_on_tag_names(text, kept):
    assert grounded(text, EV, "zh") is kept
    assert (write_text(EV, "zh", _Writer(text)) == text) is kept


def test_template_zh_output_is_grounded_and_rejects_a_foreign_tag():
    text = TemplateWriter().write(EV, "zh")
    assert grounded(text, EV, "zh")
    other = Evidence(EV.duration_ms, EV.objects, ["seashore", "golden retriever", "volcano"], EV.people, [], [],
                     EV.shots)
    # the same text judged against evidence that never saw a tabby: 虎斑猫 is now an unseen word
    assert not grounded(text, other, "zh")
