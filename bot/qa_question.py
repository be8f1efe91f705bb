"""What a policy question asks, about whom and where: the facts the answerability check uses.

A question is read for:
- its *kind*: why / when / cost (what one pays) / amount (what one gets, a standard) /
  count (totals, how many) / who / where / how / may_i (yes or no) / what;
- the *group* it is about (veterans, retirees, workers in the union's mutual aid);
- the *places* it names (a city or province), the *benefits* it names ("取暖补贴"), and
  whether it names a person (a case by name, or an official whose contact is asked).
An article declares which kinds it answers, for whom and where (front matter), and
bot/qa.py answers only when the two agree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from bot import kin
from bot.qa_text import simplified

KINDS = ("why", "when", "cost", "amount", "count", "who", "where", "how", "may_i", "what")
GROUPS = ("veteran", "retiree", "worker", "anyone")
# Kinds every article that answers anything about its topic satisfies when asked alone.
GENERAL_KINDS = frozenset({"what", "may_i"})

_ZH_KIND = {
    "why": r"为什么|为啥|为何|凭什么|干嘛要|干吗要|何必|原因|是干嘛用|有什么用",
    # 会不会哪天, 万一哪天: "some day", not a question of when.
    "when": r"哪年|哪一年|那年|什么时候|何时|几时|几月|哪个月|从什么时候|多久|多长时间|年份|日期|"
            r"(?<!会不会)(?<!万一)(?<!要是)(?<!如果)哪天",
    "cost": r"(交|缴|付|花(?!圈)|收|出|掏|续费|费用|自己出|缴费|缴纳|续)[^，。？?！!]{0,6}(多少|几多|几块|几百|几千|好多钱|几个钱)|"
            r"多少钱.{0,4}(交|缴|费)|要不要(交|缴|付|掏|花)钱|(用|要)(交|缴|付|掏|花)钱|(交|缴|付|掏|花)钱(吗|不)|"
            r"收费|(?<!门诊|住院|医疗|看病|就医|药品)费用|免费|自费|掏钱|"
            # 要给多少钱, 使不使给钱 (Cantonese 要俾幾多錢, 使唔使俾錢, read through knowledge/dialect.yaml):
            # what one must give, i.e. pay; 能给多少 stays what one is given
            r"(?<!能)(?<!会)(要|使不使|用不用|要不要)[^，。？?！!]{0,4}给[^，。？?！!]{0,2}(钱|多少)",  # 门诊费用: what is settled, not paid to join
    "amount": r"(补|赔|给|领|拿|发|报|得|涨|上调|提高|能领|能拿|能补|能赔|能给|报销|标准|津贴|补助|补贴|救助|低保|失业金|慰问金)"
              r"[^，。？?！!]{0,8}(多少|几多|几块|几百|几千|好多)|多少钱|几块钱|多少元|一个月多少|一年多少|"
              r"每月多少|每个月多少|平均多少|标准是多少|什么标准|赔多少|补多少|给多少|"
              r"多少(补贴|补助|津贴|救助金|慰问金|低保金)",  # 每个月有多少补贴: the sum, not a count
    "count": r"多少人|几个人|几千人|几万人|多少个|几个|几项|几名|几批|几家|几代|第几|多少家|多少条|多少次|人次|"
             r"多少万|一共|总共|累计|共有|比例|百分之|占多少|多少户|编制|有多少(?!钱|补贴|补助|津贴|救助金|慰问金|低保金)|"
             r"率是多少|率多少",
    "who": r"谁|哪些人|什么人|哪类人|哪种人|什么样的人|给谁|找谁|归谁|哪个人|什么条件|资格|符合|可以参加|能参加|"
           r"能办吗|能不能办|不能办|能补缴|能接续|能补不|能办不",
    "where": r"哪里|哪儿|在哪|去哪|哪个部门|哪个窗口|哪个单位|什么地方|到哪|交到哪|哪个科|地方办",
    "how": r"怎么|怎样|如何|咋|流程|步骤|手续|办法|怎么办|怎么弄|怎么做|分几步|先干嘛",
    "may_i": r"能不能|可不可以|可以吗|能吗|行吗|行不行|是不是|是吗|有没有|有吗|会不会|会吗|要不要|需不需要|"
             r"吗|不$|没$|没有$|管不管|包不包|算不算|够不够",
    "what": r"什么|啥|哪些|哪几|哪种|哪样",
}
_RELATIVE_NOUNS = ("people", "person", "those", "someone", "anyone", "retirees", "retiree", "pensioners",
                   "veterans", "veteran", "soldiers", "servicemen", "workers", "worker", "elderly", "ones")
_EN_KIND = {
    "why": r"\bwhy\b|what for|reason",
    "when": r"^when\b|\bwhen (is|was|will|does|did|do|can|should|are|were)\b|what year|which year|since when|"
            r"how long|what date",
    "cost": r"\b(cost|costs|fee|fees|price|charge|free or|is it free|have to pay|need to pay)\b|"
            r"\b(do|does|did|will|would|should|must) (i|we|you|he|she|they|my \w+|the family|families|workers?|"
            r"members?|people|veterans?|retirees?|pensioners?|each person|everyone|one) pay\b",
    "amount": r"\bhow much\b|\bper (month|day|year)\b|\baverage\b|\bpay out\b|\bpays?\b.{0,20}\bhospital\b",
    "count": r"\bhow many\b|\bnumber of\b|\bpercentage\b|\btotal\b",
    # "retirees who need looking after", "people who might qualify": a relative clause, not asking who
    "who": r"" + "".join(f"(?<!{noun} )" for noun in _RELATIVE_NOUNS) +
           r"\bwho\b|\bwhich (people|veterans|workers|retirees)\b|\beligible\b|\bqualif|\ballowed\b",
    "where": r"\bwhere\b|\bwhich office\b|\bwhat office\b|\bwhich department\b",
    "how": r"\bhow (do|does|can|to|is|should)\b|\bprocess\b|\bsteps\b|\bprocedure\b",
    "may_i": r"^(can|could|may|is|are|does|do|will|has|have|did)\b|\b(can|could|may) (i|we|he|she|they|my|a|an|the)\b|"
             r"\bis there\b|\bare there\b|\bdoes\b|\bdo\b",
    "what": r"\bwhat\b|\bwhich\b",
}
_ZH_KIND_RE = {k: re.compile(v) for k, v in _ZH_KIND.items()}
_EN_KIND_RE = {k: re.compile(v) for k, v in _EN_KIND.items()}
# "How much does it cost" is cost, not amount, when both match.
_SPECIFIC_ORDER = ("cost", "amount", "count", "when", "why", "where", "who", "how", "may_i", "what")

_ZH_GROUP = {
    "veteran": r"退役|退伍|老兵|军人|当兵|当过兵|士兵|老战士|复员|转业|部队|军籍|参军|服役|入伍|抗战|打过仗",
    "retiree": r"退休|退了休|退管|养老金认证|资格认证|离休|社会化管理|退休金|退休工资",
    "worker": r"职工|工会|互助|工伤|上班的|单位职工|在职",
}
_EN_GROUP = {
    "veteran": r"veteran|soldier|ex-serviceman|served in the army|army|military|vet\b|vets\b",
    # "retired" alone says retiree ("a retired factory worker"), except of soldiers: "retired
    # soldier" is how 退役士兵 is often put in English.
    "retiree": r"retiree|pensioner|retirement pension|\bretired\b(?! (soldier|servicem[ae]n|veteran|army|military|officer))",
    "worker": r"\bworker|\bunion\b|mutual aid|injured at work|employee",
}
_ZH_GROUP_RE = {k: re.compile(v) for k, v in _ZH_GROUP.items()}
_EN_GROUP_RE = {k: re.compile(v) for k, v in _EN_GROUP.items()}
# A retired worker (退休职工, 退了休的职工) is a retiree: 职工 there is not a worker in the union's
# mutual aid, whose articles are for workers in work ("退休职工得了大病" is not answered with the
# mutual aid's serious-illness subsidy). English "a retired factory worker" keeps both groups.
_ZH_RETIRED_WORKER = re.compile(r"(退休|退了休|离退休)(的|了的)?(企业|厂里的?|单位的?)?(职工|工人)")


def _zh_groups(text: str) -> frozenset[str]:
    groups = {g for g, pattern in _ZH_GROUP_RE.items() if pattern.search(text)}
    if {"retiree", "worker"} <= groups and not _ZH_GROUP_RE["worker"].search(_ZH_RETIRED_WORKER.sub(" ", text)):
        groups.discard("worker")
    return frozenset(groups)


# A benefit people name: two characters of what it is for, then what kind of money it is.
_ZH_BENEFIT = re.compile(r"([\u4e00-\u9fff]{2})(补贴|津贴|补助金|补助|红包|奖金|奖励|长寿金|福利|优惠|贷款|旅游|体检卡|购物卡|"
                         r"消费券|代金券|慰问品|救助金)")
_EN_BENEFIT = re.compile(r"\b(?=([a-z]+) (allowance|subsidy|bonus|grant|voucher|discount|loan|trip|holiday|gift|"
                         r"benefit|payment)s?\b)")
_EN_BENEFIT_SKIP = frozenset({"the", "a", "an", "any", "this", "that", "my", "his", "her", "their", "our", "of",
                              "for", "free", "monthly", "yearly", "average", "some", "what", "which", "back"})

_NOT_QUALIFIER = re.compile(r"[的么个啥哪些这那多少有是能给领拿要得]")  # 能给补助: a verb before it, not a name


def _benefit_term(qualifier: str, head: str) -> str:
    """The name to look for in the articles: a long head word alone (长寿金), else with what it is for."""
    return head if len(head) >= 3 else qualifier + head


# People's names: a common surname and one or two characters, then how people refer to
# someone (的, 大爷, 先生 …). Surnames that are also everyday words (高, 白, 钱, 方 …) are left out.
_SURNAMES = ("王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶苏魏吕丁沈姚卢"
             "姜崔钟谭陆汪范廖贾夏韦邹孟熊秦邱尹薛闫雷侯郝龚邵严覃武戴莫孔汤")
_ZH_NAME = re.compile(rf"([{_SURNAMES}][\u4e00-\u9fff]{{1,2}}?)(?=的|大爷|大妈|阿姨|老人|先生|女士|师傅|"
                      r"同志|老师|科长|主任|主席|部长|局长|站长|书记|副)|"
                      rf"(?:查一下|查下|帮我看看|看看|问问|给我)([{_SURNAMES}][\u4e00-\u9fff]{{1,2}}?)(?=的)|"
                      rf"^([{_SURNAMES}][\u4e00-\u9fff]{{1,2}})(?=的)|"
                      rf"([{_SURNAMES}])(?=先生|女士|大爷|大妈|阿姨|师傅|主席|主任|科长|局长|站长|部长|书记)")
# Two-character words that begin with a surname but are not names.
_ZH_NAME_NOT = frozenset(["黄金", "张贴", "陈列", "周末", "周岁", "周围", "孙子", "孙女", "马上", "林业", "罗列", "郑重", "谢谢", "许多", "韩国", "曾经", "董事", "余额", "杜绝", "叶子", "苏州", "沈阳", "钟点", "陆续", "范围", "夏天", "严格", "武装", "武汉", "何时", "何必", "胡同", "杨树", "吴江", "徐州", "孙辈", "马路", "朱家", "刘家", "陈家", "李家", "王家", "张家", "黄家", "赵家"])
_EN_NAME = re.compile(r"\b(?:mr|mrs|ms|miss|dr|mister|madam)\.? [a-z]+|\b[A-Z][a-z]+ [A-Z][a-z]+(?:'s)?\b")
_EN_NAME_NOT = re.compile(r"^(Double Ninth|Spring Festival|Chinese New|New Year|Social Security|Hong Kong|"
                          r"Veterans Affairs|Lunar New|Affairs Bureau|Mutual Aid|Trade Union)")
_ROLE_ZH = re.compile(r"站长|局长|主任|科长|主席|部长|书记|所长|处长|负责人|领导|经办人|工作人员|专员|社工")
_ROLE_EN = re.compile(r"\b(head|director|chief|chair|chairman|chairwoman|minister|officer|manager|secretary|"
                      r"boss|clerk|caseworker)\b")
_CONTACT_ZH = re.compile(r"电话|手机|号码|微信|联系方式|邮箱|住址|家住哪|私人")
# Someone's own contact, whoever it is and however the name is written ("chen zhenxian's mobile",
# "his number"): names typed in lower case are not recognised as names.
_SOMEONES_CONTACT_EN = re.compile(r"\b(?!bureau|office|station|centre|center|union|community|department)"
                                  r"[a-z]+'s (personal |private |own )?(mobile|phone|cell|wechat|number|email|e-mail|"
                                  r"address|contact)|\b(his|her) (personal |private |own )?(mobile|phone|cell|wechat|"
                                  r"number|email|e-mail|address|contact)")
_CONTACT_EN = re.compile(r"\b(phone|mobile|cell|number|wechat|email|e-mail|contact details|address)\b")
# A person's case: what happened to an application, a claim or a payment.
_CASE_ZH = re.compile(r"办好|办完|办了|批了|批下来|到账|通过了|通过没|交了没|做了没|有结果|拿到了|领到了|进度|"
                      r"好了没|了没|了吗|没有$|审核|结果")
_CASE_EN = re.compile(r"\b(been paid|paid yet|get (his|her|their) |got (his|her|their) |approved|status|"
                      r"application|claim|processed|received)\b")


@dataclass(frozen=True)
class Asked:
    """What one question asks; empty fields mean the question does not say."""

    kinds: tuple[str, ...]  # most specific first; ("what",) when nothing more is said
    groups: frozenset[str] = frozenset()
    places: frozenset[str] = frozenset()
    benefits: tuple[str, ...] = ()  # benefit names as written ("取暖补贴", "car allowance")
    names: tuple[str, ...] = ()  # people named
    years: frozenset[str] = frozenset()  # years named ("2019"), for a figure of that year
    period: str = ""  # "day", "month" or "year": a sum asked per that period ("一天能赔多少")
    future: str = ""  # a year to come, as written ("明年", "next year"): its figures are not published
    staff_contact: bool = False  # a named person's or an official's phone, WeChat, address
    named_case: bool = False  # a person's own case asked by name
    # topics the knowledge names that the question names ("低保", "服务站"), each as the forms
    # of the word that count (its synonyms); filled in by the QA, which knows the knowledge
    topics: tuple[tuple[str, frozenset[str]], ...] = ()
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return self.kinds[0]


# How the name of a district, county, town or province ends (新罗区, 上杭县, 坎市镇, 湖南省).
_ADMIN_ENDING = re.compile(r"(特别行政区|自治区|自治州|自治县|街道|地区|省|市|区|县|州|镇|乡)$")


# Words for "each, all, this" places rather than one place's name (各县区, 全县市); 本溪市 and
# 全州县 are names.
_EVERY_PLACE = re.compile(r"(各|其他|其它|该|某|此|每)|(本|全|外)(县|市|区|省|镇|乡)")


class PlaceFinder:
    """Finds the places a question names, as the canonical Simplified names of places.yaml."""

    def __init__(self, names: list[str], aliases: dict[str, list[str]]) -> None:
        self._zh = sorted(set(names) | set(aliases), key=len, reverse=True)
        self._known_zh = frozenset(self._zh)
        self._zh_re = re.compile("|".join(map(re.escape, self._zh))) if self._zh else None
        pairs = [(alias.lower(), canon) for canon, forms in aliases.items() for alias in forms]
        self._en = dict(pairs)
        # "chinese new year", "chinese medicine": a festival or a thing, not where the question is about
        self._en_re = re.compile(r"\b(" + "|".join(sorted(map(re.escape, self._en), key=len, reverse=True)) +
                                 r")\b(?! (new year|lunar new year|medicine|characters|calendar|food)\b)") \
            if pairs else None

    def find(self, text: str, language: str) -> frozenset[str]:
        if language == "en":
            if self._en_re is None:
                return frozenset()
            return frozenset(self._en[m.group(1)] for m in self._en_re.finditer(text.lower()))
        text = simplified(text)
        known = frozenset(m.group(0) for m in self._zh_re.finditer(text)) if self._zh_re else frozenset()
        return known | self._unlisted_zh(text)

    def _unlisted_zh(self, text: str) -> frozenset[str]:
        """Districts, counties and towns the list does not hold, as the segmenter's dictionary
        knows place names ("新罗区", "上杭县", "海淀区"): a question about one of them is about
        somewhere this office may not serve, even beside a city it does ("龙岩新罗区"). Only a
        name with its administrative ending counts, and not one whose stem is a single character
        (城市, 城镇) or that speaks of every place (各县区): the dictionary tags everyday words such as
        上门 as places too."""
        import rjieba  # the Q&A index's segmenter, loaded with it

        found = set()
        for word, tag in rjieba.tag(text):
            ending = _ADMIN_ENDING.search(word) if tag == "ns" else None
            if ending is None:
                continue
            stem = word[: ending.start()]
            if (len(stem) >= 2 and not _EVERY_PLACE.match(stem) and stem not in self._known_zh
                    and word not in self._known_zh):
                found.add(word)
        return frozenset(found)

    def without_places(self, text: str) -> str:
        """Simplified `text` with the place names blanked: a name is not a question word
        (攀枝花 holds 花, "spend", which would read "攀枝花给多少" as a cost)."""
        text = simplified(text)
        return self._zh_re.sub(" ", text) if self._zh_re is not None else text


class TopicNames:
    """The knowledge's own names of topics (schemes, services, benefits, offices) in a question.

    A topic name is a keyword or synonym of the knowledge that some article's title names (in
    one of its forms), that few articles mention at all (at most `MAX_SHARE` of them) and that is
    not a place (places have their own check): "低保", "留守儿童", "legal aid", not "一年" or
    "怎么办". In English only names of two words or more count: single English words of the
    knowledge ("job", "card", "support") are everyday words as often as names. A yes/no or general question that names a topic is
    answered only by an article that mentions it: "can the veterans' service station help me apply
    for dibao" is not answered by the station's overview, which never mentions dibao (the kind
    check lets general questions through, so without this the overview answers with confidence).
    """

    MAX_SHARE = 0.1

    def __init__(self, language: str, titles: list[str], texts: list[str], words: set[str],
                 synonym_groups: tuple[tuple[str, ...], ...], places: frozenset[str] = frozenset()) -> None:
        self.language = language
        forms: dict[str, set[str]] = {}
        for group in synonym_groups:
            for word in group:
                forms.setdefault(word, set()).update(group)
        names: dict[str, frozenset[str]] = {}
        for word in words | set(forms):
            if len(word) < 2 or re.search(r"\d", word) or read_question(word, language).kinds != ("what",):
                continue  # a figure, or a question word ("哪一年开始", "how much"): not a topic
            if word in places or (language == "en" and not re.search(r"[ -]", word)):
                continue
            if read_question(word, language).groups:
                continue  # whom the question is about ("企业退休", a retired worker): the group check's
            word_forms = frozenset(forms.get(word, {word}))
            if not any(self._in(f, title) for f in word_forms for title in titles):
                continue
            if sum(1 for text in texts if any(self._in(f, text) for f in word_forms)) > self.MAX_SHARE * len(texts):
                continue
            names[word] = word_forms
        self._names = names
        alternatives = sorted(map(re.escape, names), key=len, reverse=True)
        pattern = "|".join(alternatives)
        self._pattern = re.compile(rf"\b({pattern})(?=(s|es)?\b)" if language == "en" else pattern) if names else None

    def _in(self, word: str, text: str) -> bool:
        if self.language == "en":  # whole words, plurals too
            return re.search(rf"\b{re.escape(word)}(s|es)?\b", text) is not None
        return word in text

    def named(self, text: str) -> tuple[tuple[str, frozenset[str]], ...]:
        """The topics `text` names (Simplified Chinese or lower-case English): each name as
        written, with the forms that count for it."""
        if self._pattern is None:
            return ()
        return tuple((m.group(0), self._names[m.group(0)]) for m in self._pattern.finditer(text))

    def missing(self, topics: tuple[tuple[str, frozenset[str]], ...], article_text: str) -> str:
        """The first topic, as the question names it, none of whose forms `article_text`
        mentions ("" when it mentions them all)."""
        for word, word_forms in topics:
            if not any(self._in(f, article_text) for f in word_forms):
                return word
        return ""


# A sum asked per day, month or year: only an article that states a sum per that period answers
# it ("住院一天能赔多少" is not answered by a fund of 400,000 yuan a year).
_PERIOD_ZH = {"day": re.compile(r"一天|每天|每日|一日|日均|一晚"),
              "month": re.compile(r"一个月|每个月|每月|月均|月人均|按月|一月(?!份)"),
              "year": re.compile(r"一年(?!级)|每年|年均|全年")}
_PERIOD_EN = {"day": re.compile(r"\b(per|a|each|every) (day|night)\b|\bdaily\b"),
              "month": re.compile(r"\b(per|a|each|every) month\b|\bmonthly\b"),
              "year": re.compile(r"\b(per|a|each|every) year\b|\byearly\b|\bannual(ly)?\b")}


def _period(text: str, patterns: dict[str, re.Pattern[str]], kinds: set[str]) -> str:
    if not {"cost", "amount"} & kinds:
        return ""
    found = [name for name, pattern in patterns.items() if pattern.search(text)]
    return found[0] if len(found) == 1 else ""


_YEAR = re.compile(r"(?<!\d)(19[4-9]\d|20[0-4]\d)(?!\d)(?!\s*(元|块|万|yuan|人|个|名|家|项|%))")


def _years(text: str) -> frozenset[str]:
    return frozenset(m.group(1) for m in _YEAR.finditer(text))


# A figure of a year to come ("明年能涨多少", "how much will it go up next year") is one no document
# can state yet. The year must be the figure's, in the same clause: "明年满八十，要交钱吗" asks today's rule.
_FUTURE_ZH = re.compile(r"(?P<year>明年|后年|来年|下一年|下年度)[^，。？?！!,;；]{0,10}(多少|几多|几块|几百|几千|几个|几成|涨|加)")
_FUTURE_EN = re.compile(r"\b(how much|how many|what)\b[^.?!,;]{0,40}\b(?P<year>next year|the coming year)\b|"
                        r"\b(?P<first>next year|the coming year)\b[^.?!,;]{0,40}\b(how much|how many)\b")


def _future(text: str, pattern: re.Pattern[str], kinds: set[str]) -> str:
    """The year to come a figure is asked for, as written, or ""."""
    if not {"cost", "amount", "count"} & kinds:
        return ""
    found = pattern.search(text)
    if not found:
        return ""
    return found.group("year") or found.groupdict().get("first") or ""


# A follow-up that asks whether a rule covers someone else too ("那老伴住院也能报吗", "can my wife
# get it too?"): who a scheme covers is its own question, which the question followed cannot settle.
_ANOTHER_ZH = kin.one_of(kin.SPOUSE_ZH, kin.FAMILY_ZH, kin.CHILD_ZH, kin.GRANDCHILD_ZH, kin.SIBLING_ZH, kin.PARENT_ZH,
                         kin.GRANDPARENT_ZH, kin.IN_LAW_ZH, ("老人", "他", "她"))
_TOO_ZH = re.compile(_ANOTHER_ZH + r".{0,8}(也|还)(能|可以|可|有|算|行|包括|包|报|享受|领|参加|管|保|给)")
_ANOTHER_EN = kin.one_of(kin.SPOUSE_EN, ("spouse", "partner", "kids", "children", "child", "family", "grandchildren"),
                         kin.CHILD_EN, kin.PARENT_EN, kin.SIBLING_EN, kin.GRANDCHILD_EN)
_TOO_EN = re.compile(r"\b(my|his|her|their|our)\s+" + _ANOTHER_EN + r"\b.{0,40}\b(too|also|as well)\b"
                     r"|\b(what about|and) (my|his|her) " + _ANOTHER_EN + r"\b")


def subject_of(text: str, language: str) -> str:
    """`text` without its words of asking (哪里, 多少, how much, why): what it is about, for reading a
    follow-up through it ("到哪里申请" followed by "要带什么材料" asks for documents, not a place)."""
    if language == "en":
        lower = text.lower()
        for pattern in _EN_KIND_RE.values():
            lower = pattern.sub(" ", lower)
        return " ".join(lower.split())
    reduced = simplified(text)
    for pattern in _ZH_KIND_RE.values():
        reduced = pattern.sub("", reduced)
    return reduced


def extends_to_another(text: str, language: str) -> bool:
    """Whether `text` asks if a rule covers another person too."""
    if language == "en":
        return bool(_TOO_EN.search(text.lower()))
    return bool(_TOO_ZH.search(simplified(text)))


def read_question(text: str, language: str, places: PlaceFinder | None = None) -> Asked:
    """What `text` asks. `language` is "en" or "zh-Hans" (Chinese is read in Simplified)."""
    if language == "en":
        return _read_en(text, places)
    return _read_zh(simplified(text), places)


def _ordered(found: set[str]) -> tuple[str, ...]:
    kinds = tuple(k for k in _SPECIFIC_ORDER if k in found)
    return kinds or ("what",)


def _read_zh(text: str, places: PlaceFinder | None) -> Asked:
    named = text
    text = places.without_places(text) if places else text
    found = {k for k, pattern in _ZH_KIND_RE.items() if pattern.search(text)}
    if "cost" in found and "amount" in found and not re.search(r"补|赔|领|拿|发|报销|标准", text):
        found.discard("amount")
    if "count" in found and re.search(r"几块|几百块|几千块|几个钱", text):
        found.discard("count")
    if "count" in found and not re.search(r"钱|元|块|费|工资|津贴|补贴|补助|低保|金", text):
        found -= {"cost", "amount"}
    if re.search(r"一共|总共|累计|人次|多少人|结余|基金[^，。？?！!]{0,6}(还剩|剩下|有)?(多少|几)", text):
        found -= {"cost", "amount"}  # totals and counts of a programme, not what one person gets
        found.add("count")
    if "amount" in found and "cost" not in found and not re.search(
            r"补|赔|给|领|拿|发|报|得|标准|津贴|救助|低保|失业金|平均|工资|养老金|退休金", text):
        found.add("cost")  # "一年多少钱" alone: what it costs or what it gives
    if "who" in found and re.search(r"丢了|丢失|找不到|找不着|没了|不全|没带|缺了", text) and not re.search(
            r"谁|哪些人|什么人|哪类人|哪种人|什么条件|资格|符合", text):
        found.discard("who")  # 介绍信丢了还能办吗: whether it can still be done, not who may do it
        found.add("may_i")
    groups = _zh_groups(text)
    benefits = tuple(_benefit_term(m.group(1), m.group(2)) for m in _ZH_BENEFIT.finditer(text)
                     if len(m.group(2)) >= 3 or not _NOT_QUALIFIER.search(m.group(1)))
    names = tuple(n for n in (next(g for g in m.groups() if g) for m in _ZH_NAME.finditer(text))
                  if len(n) == 1 or n[:2] not in _ZH_NAME_NOT)
    contact = bool(_CONTACT_ZH.search(text)) and bool(names or _ROLE_ZH.search(text))
    named_case = bool(names) and not contact and bool(_CASE_ZH.search(text))
    return Asked(kinds=_ordered(found), groups=groups,
                 places=places.find(named, "zh-Hans") if places else frozenset(),
                 benefits=benefits, names=names, staff_contact=contact, named_case=named_case,
                 years=_years(named), period=_period(text, _PERIOD_ZH, found), future=_future(text, _FUTURE_ZH, found))


def _read_en(text: str, places: PlaceFinder | None) -> Asked:
    lower = text.lower().replace("’", "'")
    found = {k for k, pattern in _EN_KIND_RE.items() if pattern.search(lower)}
    if re.search(r"\bhow (do|can|should) (i|we|you) pay\b|\bhow to pay\b", lower):
        found.discard("cost")
    if "amount" in found and re.match(r"(does|do|will|would|can|could|is|are)\b", lower) and not re.search(
            r"\bhow much\b|\bper (month|day|year)\b|\baverage\b", lower):
        found.discard("amount")  # "does the insurance pay out for accidental death": yes or no, not a sum
    if "cost" in found:
        found.discard("amount")
    elif "amount" in found and re.search(r"\bhow much\b", lower) and not re.search(
            r"\b(get|receive|pay out|pays|paid|give|gives|claim|allowance|benefit|dibao|subsidy|average)\b|"
            r"\b(insurance|it|aid|fund|scheme|programme|program|union|policy) pay\b", lower):
        found.add("cost")  # "how much is the mutual aid a year": what it costs or what it gives
    if re.search(r"\bin total\b|\baltogether\b|\bcumulative(ly)?\b|\bso far\b|\bhow many people\b", lower):
        found -= {"cost", "amount"}  # totals and counts of a programme, not what one person gets
        found.add("count")
    groups = frozenset(g for g, pattern in _EN_GROUP_RE.items() if pattern.search(lower))
    benefits = tuple(f"{m.group(1)} {m.group(2)}" for m in _EN_BENEFIT.finditer(lower)
                     if m.group(1) not in _EN_BENEFIT_SKIP)
    names = tuple(m.group(0) for m in _EN_NAME.finditer(text if not text.islower() else text)
                  if not _EN_NAME_NOT.match(m.group(0)))
    names += tuple(m.group(0) for m in re.finditer(r"\b(?:mr|mrs|ms|dr)\.? [a-z]+", lower))
    contact = bool(_CONTACT_EN.search(lower)) and bool(names or _ROLE_EN.search(lower)
                                                       or _SOMEONES_CONTACT_EN.search(lower))
    named_case = bool(names) and not contact and bool(_CASE_EN.search(lower))
    return Asked(kinds=_ordered(found), groups=groups,
                 places=places.find(text, "en") if places else frozenset(),
                 benefits=benefits, names=names, staff_contact=contact, named_case=named_case,
                 years=_years(text), period=_period(lower, _PERIOD_EN, found), future=_future(lower, _FUTURE_EN, found))
