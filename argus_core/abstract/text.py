"""Abstract texts built only from evidence (what the models reported), Chinese by default, English with ``en``.

:class:`Evidence` holds what was seen in a shot/scene/clip/programme. :class:`TemplateWriter` composes a text
from its parts (duration, people and names, the most frequent objects, scene tags, on-screen keyphrases):
which clauses appear, their order and their phrasing follow the evidence, so two different segments read
differently and nothing absent from the evidence can appear. Chinese texts name COCO classes by :data:`ZH`
and ImageNet tags by :func:`imagenet_zh` (``imagenet_zh.json``, our translations of MobileNetV2's 1000
labels). An operator's writer (anything with ``write(evidence, language) -> str``, e.g. a client for an
OpenAI-compatible endpoint) is tried first when given; its text is kept only when :func:`grounded` accepts it,
else the template is used (the default and the fallback).
"""

from __future__ import annotations

import json
import re
import zlib
from functools import cache
from importlib import resources
from typing import Protocol, Sequence

import msgspec


class Evidence(msgspec.Struct, frozen=True):
    """What the models reported over one segment. ``objects``: COCO class → number of frames it was seen in;
    ``tags``: ImageNet labels, best first; ``people``: most faces in one frame; ``names``: gallery matches;
    ``ocr``: on-screen keyphrases (deduplicated); ``shots``: shots in the segment."""

    duration_ms: int
    objects: dict[str, int] = {}
    tags: list[str] = []
    people: int = 0
    names: list[str] = []
    ocr: list[str] = []
    shots: int = 0


#: COCO-80 class names in Chinese (the detector's labels; anything else is kept as the model named it)
ZH = {
    "person": "人", "bicycle": "自行车", "car": "汽车", "motorcycle": "摩托车", "airplane": "飞机",
    "bus": "公交车", "train": "火车", "truck": "卡车", "boat": "船", "traffic light": "红绿灯",
    "fire hydrant": "消防栓", "stop sign": "停车标志", "parking meter": "停车计时器", "bench": "长椅",
    "bird": "鸟", "cat": "猫", "dog": "狗", "horse": "马", "sheep": "羊", "cow": "牛", "elephant": "大象",
    "bear": "熊", "zebra": "斑马", "giraffe": "长颈鹿", "backpack": "背包", "umbrella": "雨伞",
    "handbag": "手提包", "tie": "领带", "suitcase": "行李箱", "frisbee": "飞盘", "skis": "滑雪板",
    "snowboard": "单板滑雪板", "sports ball": "球", "kite": "风筝", "baseball bat": "棒球棒",
    "baseball glove": "棒球手套", "skateboard": "滑板", "surfboard": "冲浪板", "tennis racket": "网球拍",
    "bottle": "瓶子", "wine glass": "酒杯", "cup": "杯子", "fork": "叉子", "knife": "刀", "spoon": "勺子",
    "bowl": "碗", "banana": "香蕉", "apple": "苹果", "sandwich": "三明治", "orange": "橙子",
    "broccoli": "西兰花", "carrot": "胡萝卜", "hot dog": "热狗", "pizza": "披萨", "donut": "甜甜圈",
    "cake": "蛋糕", "chair": "椅子", "couch": "沙发", "potted plant": "盆栽", "bed": "床",
    "dining table": "餐桌", "toilet": "马桶", "tv": "电视", "laptop": "笔记本电脑", "mouse": "鼠标",
    "remote": "遥控器", "keyboard": "键盘", "cell phone": "手机", "microwave": "微波炉", "oven": "烤箱",
    "toaster": "烤面包机", "sink": "水槽", "refrigerator": "冰箱", "book": "书", "clock": "时钟",
    "vase": "花瓶", "scissors": "剪刀", "teddy bear": "泰迪熊", "hair drier": "吹风机", "toothbrush": "牙刷",
}


@cache
def imagenet_zh() -> dict[str, str]:
    """ImageNet label (as MobileNetV2's manifest spells it) → Chinese name, from ``imagenet_zh.json`` (our own
    translations, shipped as package data). The two labels that name two classes ("crane", "maillot") get the
    file's ``shared`` name, since a tag reaches the text as its label string only."""
    doc = json.loads(resources.files(__package__).joinpath("imagenet_zh.json").read_text(encoding="utf-8"))
    out = {en: zh for en, zh in doc["labels"]}
    out.update(doc["shared"])
    return out


def tag_name(label: str, lang: str) -> str:
    """An ImageNet tag as a text names it: its Chinese name in ``zh`` (the English label when the table
    lacks it, so that an unknown tag is still reported rather than dropped), the label itself in ``en``."""
    return label if lang == "en" else imagenet_zh().get(label, label)


# the glue the template uses, and all a grounded text may add to the evidence's own words
_ZH_GLUE = "本片段视频镜头场景共约秒分钟时长画面中出现了有主要可见以及和与、，。：；“”「」位人物名字为屏幕上文字写着" \
           "个多次其包括还背景像是特征：在等内容这"
_EN_GLUE = {"a", "an", "the", "this", "clip", "scene", "shot", "segment", "video", "programme", "lasts",
            "about", "seconds", "second", "minutes", "minute", "and", "with", "shows", "show", "showing",
            "appear", "appears", "appearing", "seen", "visible", "people", "person", "faces", "face", "named",
            "on", "screen", "text", "reads", "reading", "in", "of", "shots", "over", "mostly", "also",
            "looks", "like", "tagged", "as", "frames", "frame", "across", "it", "its", "there", "is", "are",
            "featuring", "plus"}


def _dur(ms: int, lang: str) -> str:
    s = max(1, round(ms / 1000))
    if lang == "en":
        return f"{s // 60} minutes {s % 60} seconds" if s >= 120 else f"{s} seconds"
    return f"{s // 60}分钟{s % 60}秒" if s >= 120 else f"{s}秒"


def _name(label: str, lang: str) -> str:
    return label if lang == "en" else ZH.get(label, label)


def _join(items: Sequence[str], lang: str) -> str:
    if lang == "en":
        return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
    return "、".join(items)


class TemplateWriter:
    """Composes a text from the evidence's parts; see the module docstring."""

    def write(self, ev: Evidence, language: str = "zh") -> str:
        lang = "en" if language == "en" else "zh"
        pick = zlib.crc32(msgspec.json.encode(ev))   # the phrasing varies with the content, deterministically
        objs = [k for k, _ in sorted(ev.objects.items(), key=lambda kv: (-kv[1], kv[0])) if k != "person"][:4]
        parts: list[str] = []
        if lang == "en":
            unit = "shots" if ev.shots > 1 else "shot"
            parts.append(f"{'This segment' if pick % 2 else 'The clip'} lasts about {_dur(ev.duration_ms, lang)}"
                         + (f" over {ev.shots} {unit}" if ev.shots > 1 else "") + ".")
            if ev.names:
                parts.append(f"{_join(ev.names, lang)} {'appear' if len(ev.names) > 1 else 'appears'} on screen.")
            elif ev.people:
                parts.append(f"{ev.people} {'people are' if ev.people > 1 else 'person is'} visible.")
            if objs:
                verb = ("It shows " if pick % 3 == 0 else "There are ") if objs else ""
                parts.append(verb + _join(objs, lang) + ("" if pick % 3 else " in the frames") + ".")
            if ev.tags:
                parts.append(f"The scene looks like {_join(ev.tags[:3], lang)}.")
            if ev.ocr:
                parts.append(f"On-screen text reads “{'”, “'.join(ev.ocr[:3])}”.")
        else:
            head = "本片段" if pick % 2 else "这段视频"
            parts.append(f"{head}时长约{_dur(ev.duration_ms, lang)}" + (f"，共{ev.shots}个镜头" if ev.shots > 1 else "")
                         + "。")
            if ev.names:
                parts.append(f"画面中出现了{_join(ev.names, lang)}。")
            elif ev.people:
                parts.append(f"画面中有{ev.people}位人物。")
            if objs:
                lead = "主要可见" if (pick % 3 == 0 or ev.names) else "画面中出现了"
                parts.append(lead + _join([_name(o, lang) for o in objs], lang) + "。")
            if ev.tags:
                parts.append(f"场景像是{_join([tag_name(t, lang) for t in ev.tags[:3]], lang)}。")
            if ev.ocr:
                parts.append(f"屏幕上文字写着“{'”“'.join(ev.ocr[:3])}”。")
        if len(parts) > 2 and pick % 4 == 1:
            parts[1:] = parts[1:][::-1]             # content first or context first, depending on the content
        return ("" if lang == "zh" else " ").join(parts)


class TextWriter(Protocol):
    def write(self, ev: Evidence, language: str = "zh") -> str: ...


def _vocabulary(ev: Evidence, lang: str) -> list[str]:
    words = [*ev.objects, *ev.tags, *ev.names, *ev.ocr]
    if lang != "en":
        words += [ZH.get(o, o) for o in ev.objects] + [tag_name(t, lang) for t in ev.tags]
    return sorted({w for w in words if w}, key=len, reverse=True)


@cache
def _glue_spelled_names() -> tuple[str, ...]:
    """Chinese label names spelled only with glue characters ("背包", "时钟"): the per-character glue check
    alone would let a text name them unseen, so :func:`grounded` looks for them by name. One-character names
    ("人") are left out: the glue's own "人物" carries them."""
    names = {*ZH.values(), *imagenet_zh().values()}
    return tuple(sorted(n for n in names if len(n) > 1 and all(ch in _ZH_GLUE for ch in n)))


def grounded(text: str, ev: Evidence, language: str = "zh") -> bool:
    """True when ``text`` says nothing beyond ``ev``: once the evidence's own words (labels, their Chinese
    names, names, keyphrases) are taken out, only the template's glue and the evidence's numbers remain."""
    lang = "en" if language == "en" else "zh"
    rest = text
    for w in _vocabulary(ev, lang):
        rest = re.sub(re.escape(w), " ", rest, flags=re.IGNORECASE)
    numbers = {str(n) for n in (ev.people, ev.shots, len(ev.objects))}
    s = max(1, round(ev.duration_ms / 1000))
    numbers |= {str(s), str(s // 60), str(s % 60), str(round(ev.duration_ms / 60000))}
    for num in re.findall(r"\d+", rest):
        if num not in numbers:
            return False
    rest = re.sub(r"\d+", " ", rest)
    if lang != "en" and any(n in rest for n in _glue_spelled_names()):
        return False
    if lang == "en":
        return all(w in _EN_GLUE for w in re.findall(r"[a-z]+", rest.lower()))
    return all(ch in _ZH_GLUE or not ch.strip() or ch in ",.;:!?\"'()-" for ch in rest) and not re.search(
        r"[A-Za-z]", rest)


def write_text(ev: Evidence, language: str = "zh", writer: TextWriter | None = None) -> str:
    """The operator's ``writer`` text when it is grounded in ``ev``, else the template's."""
    if writer is not None:
        try:
            text = writer.write(ev, language)
            if isinstance(text, str) and text.strip() and grounded(text, ev, language):
                return text.strip()
        except Exception:   # an operator's writer failing (network, model) must never fail the abstract
            pass
    return TemplateWriter().write(ev, language)
