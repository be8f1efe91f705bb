"""Handoffs the words alone decide: a request for a person, a complaint, a question about
the asker's own case. No article can answer those, however well the words match."""

from __future__ import annotations

import re

from bot.qa_text import simplified

_ZH_ASK_PERSON = re.compile(
    r"转人工|找人工|要人工|人工服务|人工客服|真人|活人|客服|不(想|要)(跟|和)机器|"
    r"(找|见)(一下|个|一个)?(你们)?(的)?(工作人员|负责人|领导|经办人)|直接问人|问问人|问真人|"
    r"(跟|和|同)(你们)?(的)?(工作人员|真人|人)(说|聊|谈|通话)|"
    r"(叫|让|请|派)(个|一个|一位)?(你们的)?(工作人员|人|真人)(来)?(给我|跟我|和我|联系|打|回)|"
    r"(给|帮)?我(打|回)(个)?电话|回(个)?电话|打电话给我|来电话|"
    r"(工作人员|人工|真人|真的人).{0,8}(跟我|和我|给我|同我)(说|讲|聊|谈|打|解释)|"
    r"(安排|派)(个|一个|一位)?(工作人员|人)(来)?(联系|回复|打电话|跟我说)|(工作人员|你们|有人).{0,4}联系我|联系一下我|"
    # the whole message is "I want someone to help" (Cantonese 我想搵人幫手): a person, not a topic;
    # "找人帮忙照顾老人，社区有没有" goes on to the articles
    r"^[^，,。]{0,4}(想|要|需要)找(个|一个)?人(来)?帮(忙|手|帮我|我)?(一下)?[吧啊呀呢。！!？?~ ]*$"
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
# Asked where, how or to whom a complaint goes, with no wrong done named, the words of a complaint ask
# for the channel (letters and visits, the service's feedback): a policy question, not a complaint.
_ZH_HOW_TO_COMPLAIN = re.compile(r"(怎么|怎样|如何|去哪|在哪|哪里|向谁|找谁|跟谁|哪个部门|点样|去边度)[^，。！!]{0,4}(投诉|反映|提意见|举报)|"
                                 r"(投诉|反映|意见)[^，。！!]{0,6}(找谁|去哪|在哪|哪里|怎么|电话|渠道)")
_ZH_WORD_OF_COMPLAINT = re.compile(r"投诉|举报|告状")
_EN_HOW_TO_COMPLAIN = re.compile(r"\b(how|where|who|whom)\b[^.!]{0,40}\b(complain|complaint|report it|feedback|raise)"
                                 r"|\b(complain|complaint|feedback)\b[^.!]{0,30}\b(where|how|who|whom)\b")
_EN_WORD_OF_COMPLAINT = re.compile(r"\b(complain|complaint)\b")
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
    r"status|progress|still waiting|where is|how far|(gone|come|went|got) through|been (approved|paid|processed|accepted)|"
    r"approved yet|paid yet|through yet)\b"
    r"|\b(look at|looking at|check on|review|about|news (on|of|about)|update on|happening with|happened to) "
    r"(my|our|his|her) (case|application|claim|file|payment|subsidy|pension)\b"
    r"|\bwhere is (my|our|his|her) (money|payment|pension|subsidy|claim|application)\b"
    r"|\bwaiting .{0,30}\bfor (my|our|his|her)\b|\bapplication number\b|\bcase number\b"
    r"|\b(status|progress) of (my|our|his|her)\b|\b(can you|could you|please|pls) (check|look up|look into)\b"
    r"|\bcheck (on )?(my|our|his|her) (application|claim|case|file|payment|status|account)\b"
    r"|\bwhy (was|is|did|has|have|were) (my|our|i|we|he|she|his|her)\b"
)

# "给不给", "批不批": a question of the rule (will it be given?), not news of a refusal; "批没批"
# (has it been approved?) stays a question about a case.
_ZH_A_NOT_A = re.compile(r"([\u4e00-\u9fff])不\1")
# Asked which people or cases a rule leaves out ("哪些人是不给办的"), the words of a refusal are
# the rule's, not the asker's case, unless the asker's own is named ("我的", "为什么不给我").
_ZH_WHICH_PEOPLE = re.compile(r"哪些人|什么人|哪种人|哪类人|什么样的人|哪些情况|什么情况下|哪种情况")
_ZH_OWN_NAMED = re.compile(r"(我|俺)(的|家的)(申请|材料|档案|记录|账户|案子|钱|养老金|退休金|补助|社保)|给我|给俺")


def rule_handoff(question: str, lang: str) -> str | None:
    """The reason for a handoff that the words alone decide, or None."""
    if lang == "en":
        text = question.lower().replace("’", "'")
        if _EN_ASK_PERSON.search(text):
            return "asked_for_person"
        if _EN_COMPLAINT.search(text) and not _asks_where_to_complain(text, _EN_HOW_TO_COMPLAIN, _EN_WORD_OF_COMPLAINT,
                                                                      _EN_COMPLAINT):
            return "complaint"
        if _EN_OWN_CASE.search(text):
            return "personal_case"
        return None
    text = simplified(question)
    if _ZH_ASK_PERSON.search(text):
        return "asked_for_person"
    if _ZH_COMPLAINT.search(text) and not _asks_where_to_complain(text, _ZH_HOW_TO_COMPLAIN, _ZH_WORD_OF_COMPLAINT,
                                                                  _ZH_COMPLAINT):
        return "complaint"
    if _ZH_OWN_CASE_ALONE.search(text):
        return "personal_case"
    if _ZH_WHY_ME.search(text) and _ZH_FIRST_PERSON.search(text):
        return "personal_case"
    about_the_rule = bool(_ZH_WHICH_PEOPLE.search(text)) and not _ZH_OWN_NAMED.search(text)
    if _ZH_FIRST_PERSON.search(text) and not about_the_rule and _ZH_OWN_CASE.search(_ZH_A_NOT_A.sub(" ", text)):
        return "personal_case"
    return None


def _asks_where_to_complain(text: str, how: re.Pattern[str], word: re.Pattern[str],
                            complaint: re.Pattern[str]) -> bool:
    """Whether the only complaint in `text` is a question of where or how to make one: without the
    words of complaining, nothing else in it reads as one (no wrong done is named)."""
    return bool(how.search(text)) and not complaint.search(word.sub(" ", text))
