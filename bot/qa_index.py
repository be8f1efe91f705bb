"""Word-level search for policy Q&A: tokens (words, character bigrams, pinyin bigrams for
typos and homophones, synonyms) and BM25 over the articles of one written language."""

from __future__ import annotations

import math
import os
import re
from functools import lru_cache

# Homophone tokens need each character's reading only; pypinyin's phrase dictionary (half a
# second to import, and memory) is skipped, with the library's own switch.
os.environ.setdefault("PYPINYIN_NO_PHRASES", "1")

import bm25s  # noqa: E402
import numpy as np  # noqa: E402
import rjieba  # noqa: E402
from pypinyin import Style, lazy_pinyin  # noqa: E402

from bot.knowledge import Article
from bot.qa_text import simplified

# How many copies of each field go into an article's indexed text: the phrasings people
# use (questions, keywords, title) matter more than the wording of the answer itself.
FIELD_WEIGHTS = {"questions": 3, "keywords": 3, "title": 3, "body": 1}

_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_CJK_RUN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]{2,}")
_LATIN_WORD = re.compile(r"[a-z0-9]+")
_ZH_TOKEN_OK = re.compile(r"[\u3400-\u9fffa-z0-9]")
# Ages of 80 and over, written as digits or words, share one token: the over-80 insurance
# articles say "80岁以上" while families write "今年82了" or "she is 91".
_AGE_80_PLUS = re.compile(r"(?<![\d.,])(8\d|9\d|10\d)(?![\d,])(?!\.\d)(?!\s*(元|块|万|yuan|%|人|个|家|项|年))|"
                          r"八十|九十|eighty|ninety")
AGE_TOKEN = "age80plus"

# Words that carry no topic; kept as text so staff can read and extend the lists.
_ZH_STOPWORD_TEXT = (
    "的 了 吗 呢 吧 啊 呀 哦 嘛 么 哈 啦 喔 哎 唉 嗯 是 我 你 您 他 她 它 我们 你们 他们 她们 咱 咱们 俺 "
    "这 那 这个 那个 这些 那些 个 就 都 也 还 和 跟 与 及 或 或者 请问 请 一下 问 问问 想 想问 知道 "
    "听说 说 一个 有没有 没有 有 吧 呗 着 过 得 地 把 被 让 给 在 又 再 才 很 太 挺 好 谢谢 麻烦 "
    "能 能不能 可以 可不可以 会 会不会 是不是 要 需要 该 应该 怎么 怎么样 怎样 如何 什么 啥 哪些 哪 "
    "多少 几 吗 么 啊 呢 现在 今年 一直 已经 听 人家 老人家 老人 家里 家人 就是 然后 嗯 呃"
)
_EN_STOPWORD_TEXT = (
    "a an the and or but of to in on at for from by with about as is are was were be been being am "
    "do does did doing have has had i me my mine we our us you your he him his she her they them their "
    "it its this that these those there here what which who whom whose when where why how can could "
    "would should will shall may might must please hi hello dear thanks thank tell know want wants "
    "wanted need get got any some if so than then just also too very really still now yes "
    "t s im ive id is there much many"
)
ZH_STOPWORDS = frozenset(_ZH_STOPWORD_TEXT.split())
EN_STOPWORDS = frozenset(_EN_STOPWORD_TEXT.split())


def _stem(word: str) -> str:
    """Very light English stemming: enough to match plurals and -ing/-ed forms."""
    if len(word) <= 3:
        return word
    for suffix, replacement, min_len in (("ance", "", 7), ("ies", "y", 5), ("sses", "ss", 5), ("ches", "ch", 5),
                                         ("shes", "sh", 5), ("xes", "x", 4), ("ing", "", 6),
                                         ("ied", "y", 5), ("ed", "", 5), ("ly", "", 6)):
        if word.endswith(suffix) and len(word) >= min_len:
            return word[: -len(suffix)] + replacement
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


class Tokenizer:
    """Turns text into index tokens for one language, with synonyms mapped to one form."""

    def __init__(self, language: str, synonym_groups: tuple[tuple[str, ...], ...] = (),
                 dictionary_words: set[str] | None = None) -> None:
        self.language = language
        self.canonical: dict[str, str] = {}
        # Teach the segmenter the knowledge base's own phrases (社保补缴, 生存认证, …) so they
        # come out as one token as well as their parts (cut_for_search).
        self.segmenter_words: tuple[str, ...] = tuple(
            sorted(w for w in dictionary_words or () if _CJK.search(w) and 2 <= len(w) <= 8)
        ) if language == "zh-Hans" else ()
        self._teach_segmenter()
        for group in synonym_groups:
            forms = [self._plain_words(w) for w in group]
            canonical = " ".join(forms[0])
            for form in forms:
                self.canonical[" ".join(form)] = canonical

    def _teach_segmenter(self) -> None:
        # rjieba's dictionary is process-wide: words added for one knowledge base stay for
        # the next, which only ever adds segmentation choices.
        for word in self.segmenter_words:
            rjieba.add_word(word, None, None)

    def __setstate__(self, state: dict[str, object]) -> None:
        # A tokenizer read back from the knowledge cache teaches this process's segmenter too.
        self.__dict__.update(state)
        self._teach_segmenter()

    def _plain_words(self, text: str) -> list[str]:
        text = simplified(text)
        if self.language == "en":
            return [_stem(w) for w in _LATIN_WORD.findall(text) if w not in EN_STOPWORDS]
        return [text.strip()]

    def words(self, text: str) -> list[str]:
        """Meaningful words (no bigrams): used for coverage."""
        text = simplified(text)
        ages = [AGE_TOKEN] if _AGE_80_PLUS.search(text) else []
        if self.language == "en":
            stems = [_stem(w) for w in _LATIN_WORD.findall(text) if w not in EN_STOPWORDS]
            return self._with_synonyms(stems, phrase_len=4) + ages
        words = [w for w in rjieba.cut_for_search(text) if _ZH_TOKEN_OK.search(w) and w not in ZH_STOPWORDS]
        return self._with_synonyms(words, phrase_len=1) + ages

    def tokens(self, text: str) -> list[str]:
        """Index tokens: words plus, for Chinese, character bigrams that survive typos and odd cuts."""
        words = self.words(text)
        if self.language == "en":
            return words
        runs = _CJK_RUN.findall(simplified(text))
        bigrams = ["~" + run[i: i + 2] for run in runs for i in range(len(run) - 1)]
        return words + bigrams + [_pinyin_bigram(b[1:]) for b in bigrams]

    def _with_synonyms(self, words: list[str], phrase_len: int) -> list[str]:
        out = list(words)
        for n in range(1, phrase_len + 1):
            for i in range(len(words) - n + 1):
                canonical = self.canonical.get(" ".join(words[i: i + n]))
                if canonical is not None:
                    out.extend(canonical.split())
        return out


@lru_cache(maxsize=20000)
def _reading(character: str) -> str:
    """One character's usual toneless reading (the same on both sides of a match)."""
    return "".join(lazy_pinyin(character, style=Style.NORMAL))


def _pinyin_bigram(pair: str) -> str:
    """Two characters as toneless pinyin: 互住 and 互助, 任证 and 认证 share one token."""
    return "py:" + "".join(_reading(c) for c in pair)


@lru_cache(maxsize=20000)
def _toned(character: str) -> str:
    return "".join(lazy_pinyin(character, style=Style.TONE3, neutral_tone_with_five=True))


# Sounds that speakers of southern Chinese (and their input methods) do not tell apart.
_FUZZY = ((re.compile(r"(?<=[aeiou])ng\b"), "n"), (re.compile(r"\b([zcs])h"), r"\1"), (re.compile(r"\bl"), "n"))


def _fuzzy(word: str) -> str:
    syllables = []
    for c in word:
        syllable = _reading(c)
        for pattern, replacement in _FUZZY:
            syllable = pattern.sub(replacement, syllable)
        syllables.append(syllable)
    return " ".join(syllables)


class SoundAlikes:
    """Typed homophones of the knowledge base's own terms, put back in their written form.

    Pinyin input and voice input write a term by its sound: 互住金 for 互助金, 任证 for 认证,
    养老经 for 养老金. A stretch of two to four characters that the knowledge never writes, but
    that sounds like one of its keywords, is read as that keyword: with the same tones for two
    characters (where sound-alike words abound), and allowing the sounds southern speakers
    merge (in/ing, z/zh, l/n) for three or four. Only when exactly one keyword fits.
    """

    def __init__(self, keywords: set[str], knowledge_text: str,
                 synonym_groups: tuple[tuple[str, ...], ...] = ()) -> None:
        self._text = knowledge_text
        # The terms as the articles write them (a typo staff listed as a synonym is not one).
        terms = {w for w in keywords | {w for group in synonym_groups for w in group}
                 if _CJK_RUN.fullmatch(w) and 2 <= len(w) <= 4 and w in knowledge_text}
        by_sound: dict[tuple[int, str], set[str]] = {}
        for word in terms:
            by_sound.setdefault(self._sound_of(word), set()).add(word)
        self._by_sound = {k: next(iter(v)) for k, v in by_sound.items() if len(v) == 1}

    def _sound_of(self, stretch: str) -> tuple[int, str]:
        if len(stretch) == 2:
            return 2, " ".join(_toned(c) for c in stretch)
        return len(stretch), _fuzzy(stretch)

    def fix(self, text: str) -> str:
        return _CJK_RUN.sub(lambda m: self._fix_run(m.group(0)), text)

    def _fix_run(self, run: str) -> str:
        out, i = [], 0
        while i < len(run):
            for n in (4, 3, 2):
                stretch = run[i: i + n]
                if len(stretch) < n:
                    continue
                word = self._by_sound.get(self._sound_of(stretch))
                if word is not None and word != stretch and stretch not in self._text:
                    out.append(word)
                    i += n
                    break
            else:
                out.append(run[i])
                i += 1
        return "".join(out)


def index_tokens(article: Article, tokenizer: Tokenizer) -> list[str]:
    """Whole-article tokens with field weights; each field tokenised once."""
    questions = tokenizer.tokens("\n".join(article.questions))
    title = tokenizer.tokens(article.title)
    keywords = tokenizer.tokens("\n".join(article.keywords))
    body = tokenizer.tokens(article.body)
    return (questions * FIELD_WEIGHTS["questions"] + keywords * FIELD_WEIGHTS["keywords"]
            + title * FIELD_WEIGHTS["title"] + body * FIELD_WEIGHTS["body"])


class WordIndex:
    """BM25 over the articles of one written language, and the IDF-weighted share of a
    question's words an article holds (its coverage)."""

    def __init__(self, articles: list[Article], tokenizer: Tokenizer) -> None:
        self.articles = articles
        self.tokenizer = tokenizer
        corpus = [index_tokens(a, tokenizer) for a in articles]
        self.vocab = [set(tokens) for tokens in corpus]
        self.bm25 = bm25s.BM25(k1=1.2, b=0.75)
        self.bm25.index(corpus, show_progress=False)
        n = len(corpus)
        df: dict[str, int] = {}
        for tokens in self.vocab:
            for token in tokens:
                df[token] = df.get(token, 0) + 1
        self.idf = {t: math.log(1 + (n - d + 0.5) / (d + 0.5)) for t, d in df.items()}
        # A word no article has is as informative as the rarest word there is.
        self.unknown_idf = math.log(1 + (n + 0.5) / 0.5)
        self._last_words: tuple[str, dict[str, float]] | None = None  # see _weighted_words

    def scores(self, question: str) -> np.ndarray:
        tokens = self.tokenizer.tokens(question)
        if not tokens or len(self.articles) == 0:
            return np.zeros(len(self.articles), dtype=np.float32)
        return np.asarray(self.bm25.get_scores(tokens), dtype=np.float32)

    def __getstate__(self) -> dict[str, object]:
        # Kept on disk (bot/knowledge_cache.py) without the last question's words: they may be personal.
        return {**self.__dict__, "_last_words": None}

    def coverage(self, question: str, doc: int) -> float:
        weights = self._weighted_words(question)
        if not weights:
            return 0.0
        if self.tokenizer.language != "en":
            # A Chinese word the segmenter cut differently still counts when its bigrams are there.
            found = sum(weight * _bigram_share(w, self.vocab[doc]) for w, weight in weights.items())
        else:
            found = sum(weight for w, weight in weights.items() if w in self.vocab[doc])
        return found / sum(weights.values())

    def _weighted_words(self, question: str) -> dict[str, float]:
        """The question's words with their IDF weights. The candidates of one question ask for the
        same text one after another (seven times a search): the last text's words are kept, as
        one entry replaced whole, so threads asking at once never see a half-written one."""
        last = self._last_words
        if last is not None and last[0] == question:
            return last[1]
        weights = {w: self.idf.get(w, self.unknown_idf) for w in set(self.tokenizer.words(question))}
        self._last_words = (question, weights)
        return weights


def _bigram_share(word: str, vocab: set[str]) -> float:
    if word in vocab:
        return 1.0
    if len(word) < 3 or not _CJK.search(word):
        return 0.0
    grams = [word[i: i + 2] for i in range(len(word) - 1)]
    return sum(("~" + g) in vocab for g in grams) / len(grams)
