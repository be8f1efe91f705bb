"""Words for family members, as people write them: one list, read by who is writing (bot/answers.py: "我是他女儿",
"my mum") and by the Q&A (bot/qa_question.py: "那老伴住院也能报吗", "can my wife get it too?").

Chinese words are in Simplified (messages are read after Traditional is turned into Simplified). A pattern made
from them tries the longest word first, so that an anchored match takes "哥哥" whole rather than "哥".
"""

from __future__ import annotations

PARENT_ZH = ("爸", "妈", "爹", "娘", "父亲", "母亲", "爸爸", "妈妈", "老爸", "老妈", "阿爸", "阿妈", "老豆", "老母",
             "老爷子", "老太太", "家父", "家母")
SPOUSE_ZH = ("老伴", "老公", "老婆", "丈夫", "妻子", "爱人", "先生", "太太")
CHILD_ZH = ("女儿", "儿子", "孩子", "子女", "闺女")
CHILD_CANTONESE = ("仔", "女")  # 我系佢个仔: a child only after "his/her", never on their own
SIBLING_ZH = ("哥", "姐", "弟", "妹", "哥哥", "姐姐", "弟弟", "妹妹")
GRANDCHILD_ZH = ("孙子", "孙女", "外孙", "外孙女")
GRANDPARENT_ZH = ("爷爷", "奶奶", "外公", "外婆")
IN_LAW_ZH = ("媳妇", "女婿", "岳父", "岳母", "公公", "婆婆")
OTHER_KIN_ZH = ("侄子", "侄女", "外甥", "亲戚")
FAMILY_ZH = ("家属", "家人", "家里人")

PARENT_EN = ("dad", "father", "mum", "mom", "mother", "parents", "parent")
SPOUSE_EN = ("husband", "wife")
CHILD_EN = ("son", "daughter")
SIBLING_EN = ("brother", "sister")
GRANDCHILD_EN = ("grandson", "granddaughter")
GRANDPARENT_EN = ("grandad", "grandpa", "grandfather", "grandma", "grandmother")


def one_of(*groups: tuple[str, ...]) -> str:
    """A regular-expression group matching any of the words, the longest first."""
    words = sorted({w for group in groups for w in group}, key=lambda w: (-len(w), w))
    return "(" + "|".join(words) + ")"
