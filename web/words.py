"""The words the console shows: labels for codes, and the English of the console's own text.

`label(group, code, lang)` is the console's one way to show a code (application type, stage,
status, task kind, reason, role, audit action, channel...). It asks the project's catalogue
(`bot.words.label(group, code, lang, audience="staff")`) first, when present; the table below
fills only what the catalogue lacks.
An unknown code is never shown raw on a Chinese page: it reads 其他 ("other").

`ui(text, lang)` translates the console's own sentences: templates and routes are written in
Chinese, and `templates/web/en.yaml` holds their English (a test checks that every sentence
used has one).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

ZH, EN = "zh-Hans", "en"
LANGUAGES = (ZH, EN)
ENGLISH_FILE = Path(__file__).resolve().parent.parent / "templates" / "web" / "en.yaml"

# group -> code -> (Chinese, English), in the order the console lists them.
STAFF_LABELS: dict[str, dict[str, tuple[str, str]]] = {
    "application_type": {
        "veteran_insurance": ("退役士兵社保接续", "Veterans' insurance continuation"),
        "mutual_aid_claim": ("职工医疗互助报销", "Medical mutual-aid claim"),
        "hardship": ("困难帮扶", "Hardship help"),
        "hospital_stay": ("住院探视", "Hospital stay"),
        "death_report": ("去世报告", "Death report"),
        "certification": ("养老金资格认证", "Pension certification"),
    },
    "stage": {
        "staged": ("暂存", "Staged"),
        "accepted": ("受理", "Accepted"),
        "preliminary_review": ("初审", "Preliminary review"),
        "verification": ("核查", "Verification"),
        "payment_notice": ("缴费通知", "Payment notice"),
        "paid": ("已缴费", "Paid"),
        "completed": ("办结", "Completed"),
        "returned": ("退回补件", "Returned for documents"),
        "rejected": ("不予受理", "Rejected"),
        "withdrawn": ("撤回", "Withdrawn"),
    },
    "task_kind": {
        "home_visit": ("上门认证", "Certification at home"),
        "certification_booking": ("窗口认证预约", "Certification at the window"),
        "hospital_visit": ("住院探望", "Hospital visit"),
        "condolence_visit": ("慰问家属", "Condolence visit"),
        "hardship_visit": ("困难帮扶走访", "Hardship visit"),
        "over_80_insurance": ("80岁保险登记", "Over-80 insurance"),
        "stuck_application": ("申请久未办理", "Application waiting too long"),
        "callback": ("回电答复", "Call back"),
        "verify_death": ("核实去世报告", "Verify a reported death"),
        "verify_move": ("核实搬迁报告", "Verify a reported move"),
        "verify_contact": ("核实联系方式变更", "Verify a contact change"),
    },
    "task_status": {
        "open": ("待办", "Open"),
        "done": ("已完成", "Done"),
        "cancelled": ("已取消", "Cancelled"),
    },
    "ticket_status": {
        "open": ("待回复", "Waiting for an answer"),
        "answered": ("已回复", "Answered"),
        "closed": ("已关闭", "Closed"),
    },
    "ticket_reason": {
        "out_of_scope": ("机器人答不了", "The bot could not answer"),
        "personal_case": ("个人情况", "About their own case"),
        "complaint": ("意见投诉", "Complaint"),
        "asked_for_person": ("要求人工", "Asked for a person"),
        "flow": ("办事中转人工", "Passed on during a service"),
    },
    "close_reason": {
        "answered_by_phone": ("已电话答复", "Answered by phone"),
        "resolved_in_person": ("已当面解决", "Resolved in person"),
        "duplicate": ("重复的问题", "Duplicate"),
        "no_reply_needed": ("不需要答复", "No answer needed"),
        "other": ("其他原因", "Other"),
    },
    "outbox_status": {
        "queued": ("等待发送", "Waiting to send"),
        "sending": ("正在发送", "Sending"),
        "sent": ("已发出", "Sent"),
        "delivered": ("已送达", "Delivered"),
        "failed": ("发送失败", "Failed"),
        "cancelled": ("已取消", "Cancelled"),
        "suppressed": ("不发送（对方退订或无法联系）", "Not sent (opted out or unreachable)"),
    },
    "message_kind": {
        "cert_reminder": ("资格认证提醒", "Certification reminder"),
        "contribution_notice": ("缴费提醒", "Contribution notice"),
        "festival_greeting": ("节日问候", "Festival greeting"),
        "handoff_answer": ("工作人员答复", "Staff answer"),
        "home_visit_notice": ("上门通知", "Home-visit notice"),
        "otp": ("验证码", "One-time code"),
        "over80_insurance": ("80岁保险通知", "Over-80 insurance notice"),
        "payment_deadline_reminder": ("缴费截止提醒", "Payment deadline reminder"),
        "payment_notice": ("发放通知", "Payment notice"),
        "staff_broadcast": ("群发通知", "Broadcast"),
        "survey_invitation": ("满意度回访", "Satisfaction survey"),
        "report_received": ("报告已收到", "Report received"),
        "stage_staged": ("申请进度：暂存", "Application: staged"),
        "stage_accepted": ("申请进度：受理", "Application: accepted"),
        "stage_preliminary_review": ("申请进度：初审", "Application: preliminary review"),
        "stage_verification": ("申请进度：核查", "Application: verification"),
        "stage_payment_notice": ("申请进度：缴费通知", "Application: payment notice"),
        "stage_paid": ("申请进度：已缴费", "Application: paid"),
        "stage_completed": ("申请进度：办结", "Application: completed"),
        "stage_returned": ("申请进度：退回补件", "Application: returned"),
        "stage_rejected": ("申请进度：不予受理", "Application: rejected"),
        "stage_withdrawn": ("申请进度：撤回", "Application: withdrawn"),
    },
    "broadcast_status": {
        "draft": ("草稿", "Draft"),
        "pending_approval": ("等待批准", "Waiting for approval"),
        "approved": ("已批准", "Approved"),
        "scheduled": ("已安排时间", "Scheduled"),
        "sending": ("正在发送", "Sending"),
        "sent": ("已发完", "Sent"),
        "cancelled": ("已取消", "Cancelled"),
        "stopped": ("已停止", "Stopped"),
    },
    "channel": {
        "telegram": ("Telegram", "Telegram"),
        "sms": ("短信", "SMS"),
        "console": ("试用窗口", "Console"),
    },
    "role": {
        "viewer": ("只读查看", "Viewer"),
        "caseworker": ("经办人员", "Caseworker"),
        "composer": ("通知撰写", "Composer"),
        "approver": ("审核批准", "Approver"),
        "admin": ("系统管理", "Administrator"),
    },
    "beneficiary_kind": {
        "veteran": ("退役军人", "Veteran"),
        "retiree": ("退休人员", "Retiree"),
        "union_member": ("工会职工", "Union member"),
    },
    "beneficiary_status": {
        "active": ("在册", "On the roll"),
        "deceased": ("已去世", "Deceased"),
        "moved": ("已迁出", "Moved away"),
    },
    "relationship": {
        "self": ("本人", "Themself"),
        "spouse": ("配偶", "Spouse"),
        "child": ("子女", "Son or daughter"),
        "sibling": ("兄弟姐妹", "Brother or sister"),
        "carer": ("护理人员", "Carer"),
        "other": ("其他亲友", "Other relative or friend"),
    },
    "document": {
        "enlistment_papers": ("入伍证明材料", "Enlistment papers"),
        "discharge_form": ("退出现役登记表", "Discharge registration form"),
        "id_card": ("身份证", "ID card"),
        "payment_records": ("缴费记录", "Payment records"),
        "placement_letter": ("安置介绍信", "Placement letter"),
        "contract_termination": ("解除劳动合同书", "Labour-contract termination"),
        "discharge_summary": ("出院小结", "Discharge summary"),
        "invoices": ("住院发票", "Hospital invoices"),
        "income_proof": ("收入证明", "Proof of income"),
    },
    "certification_method": {
        "window": ("窗口办理", "At the window"),
        "home_visit": ("上门认证", "At home"),
        "certification_booking": ("窗口预约", "Booked at the window"),
        "video": ("视频认证", "By video"),
        "self_service": ("自助认证", "Self-service"),
    },
    "report_kind": {
        "death": ("去世", "Death"),
        "move": ("搬迁", "Move"),
        "contact": ("联系方式变更", "Contact change"),
    },
    "evidence": {
        "death_certificate": ("死亡证明", "Death certificate"),
        "hospital_record": ("医院记录", "Hospital record"),
        "family_statement": ("家属口述", "Family's word"),
        "community_confirmed": ("社区核实", "Confirmed by the community"),
        "none": ("暂无证明", "No evidence yet"),
    },
    "audit_action": {
        "application.create": ("提交申请", "submitted an application"),
        "application.stage": ("变更申请环节", "moved an application"),
        "application.document_checked": ("核对材料", "checked a document"),
        "application.refused_change": ("申请变更被拒绝", "application change refused"),
        "beneficiary.certified": ("记录资格认证", "recorded a certification"),
        "beneficiary.deceased": ("记录去世", "recorded a death"),
        "beneficiary.moved": ("记录迁出", "recorded a move"),
        "beneficiary.address": ("更新住址", "updated an address"),
        "beneficiary.report": ("收到报告待核实", "received a report to verify"),
        "beneficiary.report_confirmed": ("核实报告属实", "confirmed a report"),
        "beneficiary.report_rejected": ("核实报告不属实", "found a report untrue"),
        "beneficiary.paused": ("暂停主动联系", "paused outreach"),
        "beneficiary.resumed": ("恢复主动联系", "resumed outreach"),
        "contact.add": ("添加联系方式", "added a contact"),
        "contact.change": ("修改联系方式", "changed a contact"),
        "contact.remove": ("删除联系方式", "removed a contact"),
        "contact.blocked": ("对方屏蔽了机器人", "contact blocked the bot"),
        "contact.invalid": ("号码无效", "contact found invalid"),
        "contact.link": ("绑定联系方式", "linked a contact"),
        "contact.opt_in": ("恢复接收通知", "opted back in"),
        "contact.opt_out": ("退订通知", "opted out"),
        "broadcast.approve": ("批准群发", "approved a broadcast"),
        "broadcast.approve_refused": ("群发批准被拒绝", "broadcast approval refused"),
        "broadcast.cancel": ("取消群发", "cancelled a broadcast"),
        "broadcast.create": ("撰写群发", "wrote a broadcast"),
        "broadcast.schedule": ("安排群发时间", "scheduled a broadcast"),
        "broadcast.send": ("开始群发", "started a broadcast"),
        "broadcast.stop": ("停止群发", "stopped a broadcast"),
        "demo.load": ("载入演示数据", "loaded demo data"),
        "outbox.cancel": ("取消待发消息", "cancelled queued messages"),
        "outbox.retry_failed": ("重发失败消息", "retried failed messages"),
        "roll.import": ("导入名册", "imported a roll"),
        "staff.activate": ("启用账号", "activated an account"),
        "staff.deactivate": ("停用账号", "deactivated an account"),
        "staff.create": ("新建账号", "created an account"),
        "staff.language": ("更改界面语言", "changed the console language"),
        "staff.login": ("登录", "signed in"),
        "staff.login_failed": ("登录失败", "failed to sign in"),
        "staff.login_locked": ("登录尝试过多被暂停", "sign-in paused after too many tries"),
        "staff.logout": ("退出登录", "signed out"),
        "staff.password_changed": ("修改自己的密码", "changed their password"),
        "staff.password_reset": ("重设密码", "reset a password"),
        "staff.password_upgraded": ("密码加密升级", "password hash upgraded"),
        "staff.refused": ("访问被拒绝", "was refused access"),
        "staff.roles": ("更改角色", "changed roles"),
        "staff.token_issued": ("生成命令行令牌", "issued a command-line token"),
        "staff.token_revoked": ("作废命令行令牌", "revoked a command-line token"),
        "task.assign": ("分派任务", "assigned a task"),
        "task.create": ("新建任务", "opened a task"),
        "task.done": ("完成任务", "completed a task"),
        "task.note": ("添加任务备注", "added a note to a task"),
        "ticket.answer": ("答复转人工问题", "answered a handed-off question"),
        "ticket.assign": ("分派转人工问题", "assigned a handed-off question"),
        "ticket.close": ("关闭转人工问题", "closed a handed-off question"),
        "ticket.draft_article": ("生成知识库草稿", "drafted a knowledge article"),
        "ticket.escalate": ("转人工问题超时升级", "escalated a handed-off question"),
        "ticket.open": ("转给工作人员", "passed a question to staff"),
    },
    "actor": {
        "bot": ("机器人", "the bot"),
        "system": ("系统", "the system"),
        "scheduler": ("定时任务", "the scheduler"),
        "dispatcher": ("发送程序", "the sender"),
        "demo": ("演示数据", "demo data"),
        "console": ("试用窗口", "the console"),
    },
    "target": {
        "application": ("申请", "application"),
        "beneficiary": ("服务对象", "person"),
        "broadcast": ("群发", "broadcast"),
        "contact": ("联系方式", "contact"),
        "handoff_ticket": ("转人工问题", "handed-off question"),
        "roll": ("名册", "roll"),
        "staff_user": ("工作人员账号", "staff account"),
        "staff_token": ("命令行令牌", "command-line token"),
        "task": ("任务", "task"),
        "outbox_message": ("消息", "message"),
    },
}


def _catalogue() -> Any:
    """The project's catalogue of words, when present (bot/words.py)."""
    try:
        from bot import words  # type: ignore[attr-defined]
    except ImportError:
        return None
    return getattr(words, "label", None)


def label(group: str, code: str | None, lang: str = ZH) -> str:
    """What staff read for `code` in `group`, in `lang` (Chinese unless "en")."""
    if code is None or code == "":
        return ""
    english = lang == EN
    catalogue = _catalogue()
    if catalogue is not None:
        try:
            found = catalogue(group, code, EN if english else ZH, audience="staff")
        except (KeyError, LookupError, TypeError, ValueError):
            found = None
        if found and found != code:
            return str(found)
    pair = STAFF_LABELS.get(group, {}).get(code)
    if pair is not None:
        return pair[1] if english else pair[0]
    return code.replace("_", " ") if english else "其他"


def choices(group: str, lang: str) -> list[tuple[str, str]]:
    """(code, label) for every code of a group, for drop-downs and filters."""
    return [(code, label(group, code, lang)) for code in STAFF_LABELS.get(group, {})]


@lru_cache(maxsize=1)
def english() -> dict[str, str]:
    data = yaml.safe_load(ENGLISH_FILE.read_text(encoding="utf-8")) or {}
    return {str(k): str(v) for k, v in data.items()}


def N_(text: str) -> str:
    """Marks a console sentence kept in data (menus, titles) for ui() later; returns it unchanged."""
    return text


def ui(text: str, lang: str = ZH, **values: Any) -> str:
    """The console's own sentence `text` (written in Chinese) in `lang`, with {values} filled."""
    out = english().get(text, text) if lang == EN else text
    return out.format(**values) if values else out
