"""Policy questions answered from the reviewed knowledge base, or handed to staff.

How an answer is chosen:
1. Requests for a person, complaints and questions about the asker's own case go to
   staff first: no article can answer those, however well the words match.
2. Topics listed in knowledge/not_covered.yaml (card PINs, retirement age, phone
   numbers, processing times …) go to staff too: they share words with articles, so
   ranking alone would give a confident wrong answer.
3. The question is normalised (Traditional -> Simplified with OpenCC, lower case),
   tokenised (rjieba words + character bigrams for Chinese, lightly stemmed words for
   English), expanded with synonyms (knowledge/synonyms.yaml), and ranked with BM25
   over the articles of its language: the whole article (questions, keywords and title
   weigh more than the body) plus a second index of the question phrasings alone.
4. The best article is used only when both its score and its *coverage* (the
   IDF-weighted share of the question's words that the article contains) pass the
   thresholds calibrated on tests/qa; otherwise the question is handed off as out of
   scope. A guess is worse than a person answering later.

Nothing here logs the question: it may hold personal details.
"""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import bm25s
import numpy as np
import rjieba

from bot.knowledge import Article, KnowledgeBase, load_knowledge
from bot.language import detect_language, to_simplified, to_traditional

# (minimum BM25 score, minimum coverage) per written language, calibrated with
# `nuanxin eval-qa --sweep` on the dev split of tests/qa only; the held-out split checks them.
# Chinese scores run higher than English ones because bigrams add tokens.
THRESHOLDS: dict[str, tuple[float, float]] = {"zh-Hans": (9.0, 0.1), "en": (4.0, 0.1)}

# How many copies of each field go into an article's indexed text: the phrasings people
# use (questions, keywords, title) matter more than the wording of the answer itself.
FIELD_WEIGHTS = {"questions": 3, "keywords": 3, "title": 3, "body": 1}
# How much the question-phrasings index adds to the whole-article score (chosen on the dev split).
INTENT_WEIGHT = 0.5

_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_CJK_RUN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]{2,}")
_LATIN_WORD = re.compile(r"[a-z0-9]+")
_ZH_TOKEN_OK = re.compile(r"[\u3400-\u9fffa-z0-9]")
# Ages of 80 and over, written as digits or words, share one token: the over-80 insurance
# articles say "80岁以上" while families write "今年82了" or "she is 91".
_AGE_80_PLUS = re.compile(r"(?<![\d.,])(8\d|9\d|10\d)(?![\d,])(?!\.\d)(?!\s*(元|块|万|yuan|%|人|个|家|项|年))|八十|九十|eighty|ninety")
AGE_TOKEN = "age80plus"

# Words that carry no topic; kept as text so staff can read and extend the lists.
_ZH_STOPWORD_TEXT = (
    "的 了 吗 呢 吧 啊 呀 哦 嘛 么 哈 啦 喔 哎 唉 嗯 是 我 你 您 他 她 它 我们 你们 他们 她们 咱 咱们 俺 "
    "这 那 这个 那个 这些 那些 个 就 都 也 还 和 跟 与 及 或 或者 请问 请 一下 问 问问 想 想问 知道 "
    "听说 说 一个 有没有 没有 有 吧 呗 着 过 得 地 把 被 让 给 在 又 再 才 很 太 挺 好 谢谢 麻烦 "
    "能 能不能 可以 可不可以 会 会不会 是不是 要 需要 该 应该 怎么 怎么样 怎样 如何 什么 啥 哪些 哪 "
    "多少 几 吗 么 啊 呢 现在 今年 一直 已经 听 人家 老人家 老人 家里 家人"
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


@dataclass(frozen=True)
class Answer:
    handoff: bool  # True: pass to staff instead of answering
    answer: str  # the reply text, in the asker's language, ending with its source line
    sources: list[str]  # "article title — source document (seed NNN)"
    lang: str  # "zh-Hans" | "zh-Hant" | "en"
    reason: str  # "answered" | "out_of_scope" | "personal_case" | "complaint" | "asked_for_person"
    article_id: str | None
    score: float  # ranking score of the best article (compared with THRESHOLDS); 0 for rule-based handoffs
    sms: str  # short variant with the same key facts and the source, for SMS


# --------------------------------------------------------------------------- tokens


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
        if language == "zh-Hans" and dictionary_words:
            # rjieba's dictionary is process-wide: words added for one knowledge base stay
            # for the next, which only ever adds segmentation choices.
            # Teach the segmenter the knowledge base's own phrases (社保补缴, 生存认证, …)
            # so they come out as one token as well as their parts (cut_for_search).
            for word in sorted(dictionary_words):
                if _CJK.search(word) and 2 <= len(word) <= 8:
                    rjieba.add_word(word, None, None)
        for group in synonym_groups:
            forms = [self._plain_words(w) for w in group]
            canonical = " ".join(forms[0])
            for form in forms:
                self.canonical[" ".join(form)] = canonical

    def _plain_words(self, text: str) -> list[str]:
        text = to_simplified(text.lower())
        if self.language == "en":
            return [_stem(w) for w in _LATIN_WORD.findall(text) if w not in EN_STOPWORDS]
        return [text.strip()]

    def words(self, text: str) -> list[str]:
        """Meaningful words (no bigrams): used for coverage."""
        text = to_simplified(text.lower())
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
        simplified = to_simplified(text.lower())
        bigrams = ["~" + run[i: i + 2] for run in _CJK_RUN.findall(simplified) for i in range(len(run) - 1)]
        return words + bigrams

    def _with_synonyms(self, words: list[str], phrase_len: int) -> list[str]:
        out = list(words)
        for n in range(1, phrase_len + 1):
            for i in range(len(words) - n + 1):
                canonical = self.canonical.get(" ".join(words[i: i + n]))
                if canonical is not None:
                    out.extend(canonical.split())
        return out


# --------------------------------------------------------------------------- handoff rules

_ZH_ASK_PERSON = re.compile(
    r"转人工|找人工|要人工|人工服务|人工客服|真人|活人|客服|不(想|要)(跟|和)机器|"
    r"(找|见)(一下|个|一个)?(你们)?(的)?(工作人员|负责人|领导|经办人)|直接问人|问问人|问真人|"
    r"(跟|和|同)(你们)?(的)?(工作人员|真人|人)(说|聊|谈|通话)|"
    r"(叫|让|请|派)(个|一个|一位)?(你们的)?(工作人员|人|真人)(来)?(给我|跟我|和我|联系|打|回)|"
    r"(给|帮)?我(打|回)(个)?电话|回(个)?电话|打电话给我|来电话|"
    r"(工作人员|人工|真人|真的人).{0,8}(跟我|和我|给我|同我)(说|讲|聊|谈|打|解释)|"
    r"(安排|派)(个|一个|一位)?(工作人员|人)(来)?(联系|回复|打电话|跟我说)|(工作人员|你们|有人).{0,4}联系我|联系一下我"
)
_ZH_COMPLAINT = re.compile(
    r"投诉|举报|告状|态度(很|太|非常|特别|极其)?(差|恶劣|不好|冷淡|蛮横|凶)|(工作人员|办事员|窗口|社区的人|"
    r"干部|那个人|他们).{0,12}(骂|凶|吼|不理|爱理不理|推诿|踢皮球|刁难|敷衍|要好处|收红包|吃拿卡要|不耐烦|"
    r"甩脸|摔|欺负|冲|难听|嘲笑|笑话)|不作为|乱收费|推来推去|踢皮球|太不像话|什么破|服务太差|服务很差|没人管|"
    r"跑了.{0,3}(趟|次|回)|效率(太|很|真|特别)?低|办事(太|很)?慢|拖了.{0,4}(月|年)|不管事|不办事|不干事|不干活|光拿钱|说话(很|太|特别|非常)?(冲|难听|凶|不客气)|(反映|告)(一下)?(他|她|这个人|那个人|这个工作人员)|都没人接|没人接电话"
)
_ZH_FIRST_PERSON = re.compile(r"我|俺|咱|本人|我家|我爸|我妈|我爷|我奶|我老|老伴|我父|我母|我丈夫|我妻|我婆|我公")
_ZH_OWN_CASE = re.compile(
    r"少了|少发|少给|多扣|扣了|被扣|扣我|扣钱|停发|停了|被拒|拒绝了|驳回|退回|打回|没通过|不通过|"
    r"没批|不批|不给|没给|没发|还没发|没到账|不到账|没收到|收不到|还没(收到|到|下来|批|通知|打|给)|"
    r"算错|搞错|弄错|(?<!对)不对(?!不)|卡里.{0,4}没钱|钱没到|钱还没到|有结果了吗|有结果没|结果(出来)?了吗|通过了吗|通过了没|批了吗|还没办成|没办成|还没办好|没办好|还没办完|没办完|还没弄好|还没消息|没消息|没动静|没下文|没音讯|只给了|只发了|只给一半|批了没|批没批|批下来了吗|通过了没|通过没有|到底批|进度|到哪一步|到哪了|办得怎么样|办好了没|批下来没|审核结果|结果出来|"
    r"查(一下|一查|查)?(我|俺)|帮(我|俺)查|(我|俺)的(申请|材料|档案|记录|账户|案子)(呢|在哪|到哪|怎么样|办得|批)"
)
# Said about a payment or an application, these words are about one person's case even
# when the question names nobody ("上个月的退休金还没到账").
_ZH_OWN_CASE_ALONE = re.compile(
    r"还没到账|没到账|不到账|还没收到|少发了|少了\d|被停发|停发了|到哪一步|办到哪|进度(怎么样|如何|到哪)|查(一下)?进度"
)
_ZH_WHY_ME = re.compile(r"(为什么|为啥|凭什么|怎么回事|咋回事).{0,20}(少|扣|降|减|不给|没给|没发|停|拒|不批|没批|"
                        r"不通过|没通过|不符合|取消|退回|没有我|不让|只给|只发|一半|没打|没到|没来|没收到|没办)")

_EN_ASK_PERSON = re.compile(
    r"\b(human|real person|live person|live agent|an agent|operator|representative|someone real|"
    r"(speak|talk|chat) (to|with) (a |an |some|your )?(person|someone|somebody|staff|human|officer|"
    r"agent|people|worker|caseworker|manager)|call me|phone me|ring me|call me back|give me a call|"
    r"not a (bot|robot|machine)|stop the bot|put me through|transfer me|connect me (to|with)|"
    r"(someone|somebody|a person|a member of staff|staff)( from [a-z ]{1,30})? (to )?(call|phone|ring|contact|get in touch))\b"
)
_EN_COMPLAINT = re.compile(
    r"\b(complain|complaint|rude|impolite|shouted|yelled|swore|unprofessional|disrespectful|"
    r"bribe|corrupt|treated (me|us|my \w+) (badly|poorly|like)|(staff|officer|clerk|worker|woman|man|"
    r"people) (at|in) .{0,30}(was|were) (rude|awful|terrible|horrible|nasty|unhelpful|lazy)|"
    r"unhelpful|refused to help|laughed at|made fun of|mocked|was rude|were rude|so rude|hung up on|ignored (me|us|my)|"
    r"(staff|officer|clerk|they) (ignored|would not help|wouldn't help)|"
    r"report (a|the|your|this) (staff|officer|clerk|worker)|terrible service|awful service)"
)
_EN_OWN_CASE = re.compile(
    r"\b(my|our|mine|me|i|i'm|im|we|dad's|mum's|mom's|father's|mother's|husband's|wife's)\b.{0,60}"
    r"\b(refused|rejected|denied|turned down|declined|cut|reduced|lower|less|smaller|stopped|suspended|"
    r"(is|are|was|were|went|still) missing|not (arrived|received|paid|come|came)|hasn't (arrived|come)|haven't (received|got|been paid)|"
    r"didn't (get|receive|arrive|come)|never (got|received|arrived|came)|wrong|mistake|deducted|"
    r"status|progress|still waiting|where is|how far)\b"
    r"|\b(look at|looking at|check on|review|about|news (on|of|about)|update on|happening with|happened to) "
    r"(my|our|his|her) (case|application|claim|file|payment|subsidy|pension)\b"
    r"|\bwhere is (my|our|his|her) (money|payment|pension|subsidy|claim|application)\b"
    r"|\bwaiting .{0,30}\bfor (my|our|his|her)\b|\bapplication number\b|\bcase number\b"
    r"|\b(status|progress) of (my|our|his|her)\b|\b(can you|could you|please|pls) (check|look up|look into)\b"
    r"|\bcheck (on )?(my|our|his|her) (application|claim|case|file|payment|status|account)\b"
    r"|\bwhy (was|is|did|has|have|were) (my|our|i|we|he|she|his|her)\b"
)


def _rule_handoff(question: str, lang: str) -> str | None:
    """The reason for a handoff that the words alone decide, or None."""
    if lang == "en":
        text = question.lower().replace("’", "'")
        if _EN_ASK_PERSON.search(text):
            return "asked_for_person"
        if _EN_COMPLAINT.search(text):
            return "complaint"
        if _EN_OWN_CASE.search(text):
            return "personal_case"
        return None
    text = to_simplified(question)
    if _ZH_ASK_PERSON.search(text):
        return "asked_for_person"
    if _ZH_COMPLAINT.search(text):
        return "complaint"
    if _ZH_OWN_CASE_ALONE.search(text):
        return "personal_case"
    if _ZH_FIRST_PERSON.search(text) and (_ZH_OWN_CASE.search(text) or _ZH_WHY_ME.search(text)):
        return "personal_case"
    return None


# --------------------------------------------------------------------------- replies

HANDOFF_REPLIES = {
    "zh-Hans": {
        "out_of_scope": "这个问题我这里没有把握回答，已经转给工作人员。工作人员会在工作日尽快回复您，一般1个工作日内。",
        "personal_case": "这是关于您个人情况的问题，需要工作人员查看您的记录，已经转给工作人员。"
                         "工作人员会在工作日尽快回复您，一般1个工作日内。请不要在这里发送身份证号码。",
        "complaint": "您的意见已经转给负责的工作人员，我们会认真核实处理，一般1个工作日内有人联系您。谢谢您告诉我们。",
        "asked_for_person": "好的，已经为您转给工作人员。工作人员会在工作日尽快回复您，一般1个工作日内。",
    },
    "en": {
        "out_of_scope": "I can't answer this one reliably, so I have passed it to a member of staff. "
                        "They will reply on a working day, usually within 1 working day.",
        "personal_case": "This is about your own case, which a member of staff needs to look up. I have passed it "
                         "to them; they will reply on a working day, usually within 1 working day. "
                         "Please do not send your ID card number here.",
        "complaint": "Thank you for telling us. I have passed this to the staff member in charge; someone will "
                     "contact you, usually within 1 working day.",
        "asked_for_person": "Of course. I have passed your message to a member of staff; they will reply on a "
                            "working day, usually within 1 working day.",
    },
}
SOURCE_LABEL = {"zh-Hans": "来源：", "en": "Source: "}


def _index_tokens(article: Article, tokenizer: Tokenizer) -> tuple[list[str], list[str]]:
    """(whole-article tokens with field weights, question-phrasing tokens); each field tokenised once."""
    questions = tokenizer.tokens("\n".join(article.questions))
    title = tokenizer.tokens(article.title)
    keywords = tokenizer.tokens("\n".join(article.keywords))
    body = tokenizer.tokens(article.body)
    weighted = (questions * FIELD_WEIGHTS["questions"] + keywords * FIELD_WEIGHTS["keywords"]
                + title * FIELD_WEIGHTS["title"] + body * FIELD_WEIGHTS["body"])
    return weighted, questions + title


class _LanguageIndex:
    """BM25 over the articles of one written language.

    Two indexes: the whole article, and its "intent" fields alone (questions, title), so
    that the words of the question people ask (where, how much, what to bring) decide
    between articles on the same subject.
    """

    def __init__(self, articles: list[Article], tokenizer: Tokenizer) -> None:
        self.articles = articles
        self.tokenizer = tokenizer
        corpus, intents = zip(*(_index_tokens(a, tokenizer) for a in articles), strict=True)
        self.vocab = [set(tokens) for tokens in corpus]
        self.bm25 = bm25s.BM25(k1=1.2, b=0.75)
        self.bm25.index(list(corpus), show_progress=False)
        self.intent = bm25s.BM25(k1=1.2, b=0.75)
        self.intent.index(list(intents), show_progress=False)
        n = len(corpus)
        df: dict[str, int] = {}
        for tokens in self.vocab:
            for token in tokens:
                df[token] = df.get(token, 0) + 1
        self.idf = {t: math.log(1 + (n - d + 0.5) / (d + 0.5)) for t, d in df.items()}
        # A word no article has is as informative as the rarest word there is.
        self.unknown_idf = math.log(1 + (n + 0.5) / 0.5)

    def best(self, question: str) -> tuple[Article | None, float, float]:
        """(article, bm25 score, coverage) of the best match."""
        tokens = self.tokenizer.tokens(question)
        if not tokens:
            return None, 0.0, 0.0
        scores = self.bm25.get_scores(tokens) + INTENT_WEIGHT * self.intent.get_scores(tokens)
        top = int(np.argmax(scores))
        return self.articles[top], float(scores[top]), self._coverage(question, top)

    def _coverage(self, question: str, doc: int) -> float:
        words = set(self.tokenizer.words(question))
        if not words:
            return 0.0
        weights = {w: self.idf.get(w, self.unknown_idf) for w in words}
        if self.tokenizer.language != "en":
            # A Chinese word the segmenter cut differently still counts when its bigrams are there.
            found = sum(weights[w] * _bigram_share(w, self.vocab[doc]) for w in words)
        else:
            found = sum(weights[w] for w in words if w in self.vocab[doc])
        return found / sum(weights.values())


def _bigram_share(word: str, vocab: set[str]) -> float:
    if word in vocab:
        return 1.0
    if len(word) < 3 or not _CJK.search(word):
        return 0.0
    grams = [word[i: i + 2] for i in range(len(word) - 1)]
    return sum(("~" + g) in vocab for g in grams) / len(grams)


def _not_covered_pattern(phrases: list[str], language: str) -> re.Pattern[str] | None:
    if not phrases:
        return None
    if language == "en":
        alternatives = sorted({re.escape(p.lower()) for p in phrases}, key=len, reverse=True)
        return re.compile(r"\b(" + "|".join(alternatives) + r")\b")
    alternatives = sorted({re.escape(to_simplified(p.lower())) for p in phrases}, key=len, reverse=True)
    return re.compile("|".join(alternatives))


class QA:
    def __init__(self, knowledge: KnowledgeBase) -> None:
        self.knowledge = knowledge
        self._not_covered = {
            lang: _not_covered_pattern([p for phrases in topics.values() for p in phrases], lang)
            for lang, topics in knowledge.not_covered.items()
        }
        self._indexes: dict[str, _LanguageIndex] = {}
        for lang in ("zh-Hans", "en"):
            articles = knowledge.in_language(lang)
            if not articles:
                continue
            dictionary = {w for a in articles for w in a.keywords}
            dictionary |= {w for group in knowledge.synonyms.get(lang, ()) for w in group}
            tokenizer = Tokenizer(lang, knowledge.synonyms.get(lang, ()), dictionary)
            self._indexes[lang] = _LanguageIndex(articles, tokenizer)

    @classmethod
    def load(cls, knowledge_dir: Path | None = None) -> QA:
        return cls(load_knowledge(knowledge_dir))

    def answer(self, question: str, lang_hint: str | None = None) -> Answer:
        lang = detect_language(question, lang_hint)
        base = "en" if lang == "en" else "zh-Hans"
        reason = _rule_handoff(question, lang)
        if reason is not None:
            return self._handoff(reason, lang)
        if self._is_not_covered(question, base):
            return self._handoff("out_of_scope", lang)
        index = self._indexes.get(base)
        if index is None:
            return self._handoff("out_of_scope", lang)
        article, score, coverage = index.best(question)
        min_score, min_coverage = THRESHOLDS[base]
        if article is None or score < min_score or coverage < min_coverage:
            return self._handoff("out_of_scope", lang, score)
        return self._answered(article, lang, score)

    def _is_not_covered(self, question: str, base: str) -> bool:
        pattern = self._not_covered.get(base)
        return pattern is not None and pattern.search(to_simplified(question.lower())) is not None

    def explain(self, question: str, lang_hint: str | None = None) -> dict[str, object]:
        """The raw ranking figures for a question (for calibration and staff debugging)."""
        lang = detect_language(question, lang_hint)
        base = "en" if lang == "en" else "zh-Hans"
        rule = _rule_handoff(question, lang) or ("not_covered" if self._is_not_covered(question, base) else None)
        index = self._indexes.get(base)
        if index is None:
            return {"lang": lang, "rule": rule}
        article, score, coverage = index.best(question)
        return {"lang": lang, "rule": rule, "article_id": article and article.id,
                "score": score, "coverage": coverage}

    def source_line(self, article: Article, lang: str) -> str:
        base = "en" if lang == "en" else "zh-Hans"
        document = self.knowledge.seeds[article.seed][base]
        return _localise(f"{article.title} — {document} (seed {article.seed})", lang)

    def _answered(self, article: Article, lang: str, score: float) -> Answer:
        base = "en" if lang == "en" else "zh-Hans"
        source = self.source_line(article, lang)
        label = _localise(SOURCE_LABEL[base], lang)
        body = _localise(article.body, lang)
        sms_text = _localise(article.sms or _first_paragraph(article.body), lang)
        document = _localise(self.knowledge.seeds[article.seed][f"{base}-sms"], lang)
        return Answer(
            handoff=False, answer=f"{body}\n\n{label}{source}", sources=[source], lang=lang,
            reason="answered", article_id=article.id, score=round(score, 3),
            sms=f"{sms_text}（{label}{document}）" if base == "zh-Hans" else f"{sms_text} ({label}{document})",
        )

    def _handoff(self, reason: str, lang: str, score: float = 0.0) -> Answer:
        text = _localise(HANDOFF_REPLIES["en" if lang == "en" else "zh-Hans"][reason], lang)
        return Answer(handoff=True, answer=text, sources=[], lang=lang, reason=reason, article_id=None,
                      score=round(score, 3), sms=text)


@lru_cache(maxsize=4096)
def _localise(text: str, lang: str) -> str:
    return to_traditional(text) if lang == "zh-Hant" else text


def _first_paragraph(body: str) -> str:
    return body.strip().split("\n\n", 1)[0]


_shared: QA | None = None
_shared_lock = threading.Lock()


def get_qa() -> QA:
    """The process-wide QA, loaded on first use."""
    global _shared
    if _shared is None:
        with _shared_lock:
            if _shared is None:
                _shared = QA.load()
    return _shared
