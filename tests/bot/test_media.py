"""Only photos and files are documents; every other kind of message gets a short, kind answer."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from bot.channels.base import Attachment, Inbound
from models.applications import Application, ApplicationDocument, HandoffTicket
from tests.bot.conftest import LI_PHONE, Chat, link


def send(chat: Chat, *attachments: Attachment, text: str = "", edited: bool = False) -> str:
    chat.last = chat.engine.handle(Inbound(channel=chat.channel, address=chat.address, text=text,
                                           attachments=attachments, edited=edited))
    return "\n".join(r.text for r in chat.last)


def at_documents(engine, notifier, address: str) -> Chat:
    chat = Chat(engine, "telegram", address)
    link(chat, notifier, LI_PHONE)
    for answer in ("2", "2026-1-5到2026-1-20", "江门市中心医院", "8600", "不是"):
        chat(answer)
    assert "第1/2份：出院小结" in chat.last[0].text
    return chat


VOICE = Attachment(kind="voice", file_id="v1", mime_type="audio/ogg", local_path="/var/uploads/1/voice.ogg")


@pytest.mark.parametrize(("attachment", "said"), [
    (Attachment(kind="sticker", file_id="s1"), "表情"),
    (Attachment(kind="location", file_name="22.58,113.08"), "位置"),
    (Attachment(kind="contact", file_name="+86138****0001"), "名片"),
    (Attachment(kind="video", file_id="m1"), "视频"),
])
def test_media_that_are_not_documents_are_answered_and_never_filed(engine, notifier, roll, db_engine,
                                                                   attachment, said):
    """At the documents step a sticker, location, contact card or video is answered and the same item asked again."""
    chat = at_documents(engine, notifier, f"md-{attachment.kind}")
    text = send(chat, attachment)
    assert said in text and "第1/2份：出院小结" in text and "收到：出院小结" not in text
    chat("以后")
    chat("1")
    with Session(db_engine) as s:
        assert s.exec(select(Application)).one()
        assert not s.exec(select(ApplicationDocument).where(ApplicationDocument.received.is_(True))).all()  # type: ignore[attr-defined]


def test_a_voice_message_becomes_a_ticket_with_its_audio_and_the_person_is_told(engine, notifier, roll, db_engine):
    """The voice note goes to staff to hear (its file on the ticket); the flow waits where it was."""
    chat = at_documents(engine, notifier, "md-voice")
    text = send(chat, VOICE)
    assert "已转给工作人员听" in text and "第1/2份：出院小结" in text
    with Session(db_engine) as s:
        ticket = s.exec(select(HandoffTicket)).one()
    assert ticket.reason == "voice"
    assert any(e.get("audio") == "/var/uploads/1/voice.ogg" for e in ticket.transcript)
    assert chat.state() == ("mutual_aid_claim", "documents")


def test_media_at_the_menu_get_their_own_answer_not_the_picture_one(engine):
    """"收到您的图片/文件" is said only of pictures and files."""
    chat = Chat(engine, "telegram", "md-menu")
    assert "表情" in send(chat, Attachment(kind="sticker", file_id="s1"))
    assert "收到您的图片/文件" not in chat.last[0].text
    assert "图片/文件" in send(chat, Attachment(kind="photo", file_id="p1"))


def test_an_edited_message_is_answered_and_changes_nothing(engine, notifier, roll):
    """Editing an earlier answer: told it does not change what was taken, and how to change it."""
    chat = Chat(engine, "telegram", "md-edit")
    link(chat, notifier, LI_PHONE)
    chat("3")
    chat("2")
    before = chat.state()
    text = send(chat, text="3", edited=True)
    assert "改了之前的消息" in text and "返回" in text
    assert chat.state() == before


def test_a_caption_naming_a_document_files_the_photo_under_it(engine, notifier, roll, db_engine):
    """"呢張係收據" is the invoices even when the discharge summary is asked first; files are not taken by order."""
    chat = at_documents(engine, notifier, "md-caption")
    photo = Attachment(kind="photo", file_id="p1", mime_type="image/jpeg", local_path="/var/uploads/receipt.jpg")
    text = send(chat, photo, text="呢張係收據")
    assert "收到：住院发票" in text and "第1/2份：出院小结" in text
    summary = Attachment(kind="photo", file_id="p2", mime_type="image/jpeg", local_path="/var/uploads/summary.jpg")
    assert "请核对" in send(chat, summary)
    chat("1")
    with Session(db_engine) as s:
        docs = {d.code: d for d in s.exec(select(ApplicationDocument)).all()}
    assert docs["invoices"].file_path == "/var/uploads/receipt.jpg"
    assert docs["discharge_summary"].file_path == "/var/uploads/summary.jpg"
