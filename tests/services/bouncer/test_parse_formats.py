"""Golden tests for bounce formats the parser used to miss (issue 19, item 2).

Each fixture in tests/data/bounces was written by the project in the style of the MTA
named in its file name; the inline messages below are too.
"""

from __future__ import annotations

from pathlib import Path

from services.bouncer.cli import classify_bytes
from services.bouncer.dsn import parse_field_blocks
from services.bouncer.parse import parse_message
from services.bouncer.report import ReportKind, clean_address, is_mailbox_path

DATA = Path(__file__).resolve().parents[2] / "data" / "bounces"


def _lines(name: str) -> list[tuple[str, str, str, bool]]:
    lines = classify_bytes((DATA / name).read_bytes())
    return [(ln["kind"], ln["recipient"], ln["status"], ln["permanent"]) for ln in lines]


def test_dsn_blocks_without_blank_lines_give_every_recipient() -> None:
    assert _lines("domino_dsn_blocks_without_blank_lines.eml") == [
        ("dsn", "h.berger@mfg-partner.example", "5.1.1", True),
        ("dsn", "k.lindqvist@mfg-partner.example", "5.1.1", True),
        ("dsn", "s.okafor@mfg-partner.example", "5.2.2", True),
    ]
    report = parse_message((DATA / "domino_dsn_blocks_without_blank_lines.eml").read_bytes())
    # The per-message block has no blank line after it either: its fields stay its own.
    assert report.reporting_mta == "gw1.mfg-partner.example"
    assert "mailbox s.okafor is full" in report.recipients[2].diagnostic
    assert "not listed in Domino Directory" in report.recipients[0].diagnostic


def test_base64_delivery_status_gives_every_recipient() -> None:
    assert _lines("gateway_dsn_base64_three_recipients.eml") == [
        ("dsn", "ana.silva@hosting-customer.example", "5.1.1", True),
        ("dsn", "b.novak@hosting-customer.example", "5.1.1", True),
        ("dsn", "c.tanaka@hosting-customer.example", "4.2.2", False),
    ]
    report = parse_message((DATA / "gateway_dsn_base64_three_recipients.eml").read_bytes())
    assert report.reporting_mta == "relay2.hosting-co.example"
    assert [r.smtp_code for r in report.recipients] == [550, 550, 452]


_WHITESPACE_SEPARATED = (
    "Return-Path: <>\n"
    "From: MAILER-DAEMON@mx.sender.example\n"
    "To: b+token@bounces.postline.test\n"
    "Subject: Delivery Status Notification (Failure)\n"
    "MIME-Version: 1.0\n"
    'Content-Type: multipart/report; report-type=delivery-status; boundary="b1"\n'
    "\n"
    "--b1\n"
    "Content-Type: text/plain\n"
    "\n"
    "Delivery to these recipients failed.\n"
    "\n"
    "--b1\n"
    "Content-Type: message/delivery-status\n"
    "\n"
    "Reporting-MTA: dns; mx.sender.example\n"
    "  \n"
    "Final-Recipient: rfc822; first@one.example\n"
    "Action: failed\n"
    "Status: 5.1.1\n"
    " \t\n"
    "Final-Recipient: rfc822; second@two.example\n"
    "Action: failed\n"
    "Status: 5.1.1\n"
    "  \n"
    "Final-Recipient: rfc822; third@three.example\n"
    "Action: delayed\n"
    "Status: 4.4.1\n"
    "\n"
    "--b1--\n"
)


def test_blocks_separated_by_whitespace_lines_give_every_recipient() -> None:
    report = parse_message(_WHITESPACE_SEPARATED.encode())
    assert report.kind is ReportKind.DSN
    got = [(r.recipient, r.action, r.status) for r in report.recipients]
    assert got == [
        ("first@one.example", "failed", "5.1.1"),
        ("second@two.example", "failed", "5.1.1"),
        ("third@three.example", "delayed", "4.4.1"),
    ]


def test_field_blocks_split_on_a_new_recipient_only_for_dsn_fields() -> None:
    text = "Final-Recipient: rfc822; a@x.example\nAction: failed\n"
    text += "Original-Recipient: rfc822; b@y.example\nFinal-Recipient: rfc822; b@y.example\n"
    text += "Action: failed\n"
    fields = ("original-recipient", "final-recipient")
    blocks = parse_field_blocks(text, fields)
    assert [b.get("final-recipient") for b in blocks] == [
        "rfc822; a@x.example",
        "rfc822; b@y.example",
    ]
    assert blocks[1]["original-recipient"] == "rfc822; b@y.example"
    # ARF and other callers keep one block per blank-line group.
    assert len(parse_field_blocks(text)) == 1


def test_quoted_local_part_comes_out_whole() -> None:
    assert _lines("postfix_dsn_quoted_local_part.eml") == [
        ("dsn", '"john smith"@old-university.example', "5.1.1", True),
    ]
    assert clean_address('rfc822; "john smith"@example.org') == '"john smith"@example.org'
    assert clean_address('"John Smith" <john@example.org>') == "john@example.org"


def test_quoted_local_part_in_a_text_bounce_comes_out_whole() -> None:
    raw = (
        b"From: Mail Delivery System <MAILER-DAEMON@relay.isp.example>\n"
        b"To: b+token@bounces.postline.test\n"
        b"Subject: Mail delivery failed: returning message to sender\n"
        b"\n"
        b"A message that you sent could not be delivered to one or more of its\n"
        b"recipients. This is a permanent error. The following address(es) failed:\n"
        b"\n"
        b'  "mary o\'neil"@isp-customer.example\n'
        b"    550 5.1.1 User unknown\n"
    )
    (line,) = classify_bytes(raw)
    assert line["recipient"] == '"mary o\'neil"@isp-customer.example'
    assert line["permanent"] is True


def test_x_failed_recipients_is_trusted_when_it_equals_the_bounce_to() -> None:
    assert _lines("exim_failed_recipient_is_own_to.eml") == [
        ("bounce", "owner@small-business.example", "", True),
    ]


def test_mailbox_path_is_not_taken_for_an_address() -> None:
    # Sendmail's DSN names the mailbox file; the recipient is the address it expanded from.
    assert _lines("sendmail_dsn_mailbox_path.eml") == [
        ("bounce", "maria.rossi@family-isp.example", "5.2.2", True),
    ]
    assert is_mailbox_path("/var/mail/john")
    assert is_mailbox_path("|/usr/bin/procmail")
    assert not is_mailbox_path("/G=John/S=Smith/O=Org/@x400-gw.example")
    assert not is_mailbox_path("john@example.org")


def test_mailbox_path_alone_is_no_recipient() -> None:
    raw = _WHITESPACE_SEPARATED.replace("rfc822; first@one.example", "RFC822; /var/mail/first")
    report = parse_message(raw.encode())
    assert [r.recipient for r in report.recipients] == ["second@two.example", "third@three.example"]


def test_old_sendmail_transcript_lines_anywhere_in_the_body() -> None:
    report = parse_message((DATA / "sendmail_v5_host_unknown.eml").read_bytes())
    assert report.kind is ReportKind.BOUNCE
    got = [(r.recipient, r.smtp_code, r.permanent) for r in report.recipients]
    assert got == [
        ("r.ortega@retired-host.campus.example", 554, True),
        ("wkim@legacy.campus.example", 550, True),
    ]
    assert "Host unknown" in report.recipients[0].diagnostic
    assert "User unknown" in report.recipients[1].diagnostic


def test_sendmail_transcript_line_with_enhanced_code_and_no_brackets() -> None:
    raw = (
        b"From: Mail Delivery Subsystem <MAILER-DAEMON@old.campus.example>\n"
        b"To: b+token@bounces.postline.test\n"
        b"Subject: Returned mail: User unknown\n"
        b"\n"
        b"The original message was received from mx.shop.example\n"
        b"\n"
        b"   ----- Transcript of session follows -----\n"
        b"... while talking to mail.dept.campus.example.:\n"
        b">>> RCPT To:<lee@dept.campus.example>\n"
        b"<<< 550 5.1.1 lee@dept.campus.example... User unknown\n"
    )
    (line,) = classify_bytes(raw)
    assert (line["recipient"], line["status"], line["smtp_code"]) == (
        "lee@dept.campus.example",
        "5.1.1",
        550,
    )


def test_final_recipient_is_the_recipient_and_original_recipient_is_kept() -> None:
    # Issue 19, item 3: the address the remote MTA tried (an alias's target) is the
    # recipient; the Original-Recipient (the address we sent to) is its own field.
    (line,) = classify_bytes((DATA / "postfix_dsn_alias_forwarded.eml").read_bytes())
    assert (line["recipient"], line["original_recipient"], line["status"]) == (
        "owner.bakery@webmail-provider.example",
        "info@bakery-customer.example",
        "5.1.1",
    )


def test_original_recipient_alone_still_names_the_recipient() -> None:
    raw = _WHITESPACE_SEPARATED.replace(
        "Final-Recipient: rfc822; second@two.example",
        "Original-Recipient: rfc822; second@two.example",
    )
    report = parse_message(raw.encode())
    second = report.recipients[1]
    assert (second.recipient, second.original_recipient) == (
        "second@two.example",
        "second@two.example",
    )


def test_ses_bounce_in_an_sns_json_envelope() -> None:
    assert _lines("ses_sns_json_bounce_permanent.eml") == [
        ("dsn", "m.fischer@regional-bank.example", "5.1.1", True),
        ("dsn", "legal@regional-bank.example", "5.2.1", True),
    ]
    report = parse_message((DATA / "ses_sns_json_bounce_permanent.eml").read_bytes())
    assert report.parser == "ses"
    assert report.reporting_mta == "e226-55.smtp-out.eu-west-1.amazonses.com"
    assert report.original_message_id == "<stmt-2026-11-4471@ledger-app.example>"
    assert report.recipients[0].smtp_code == 550
    assert "User unknown in relay recipient table" in report.recipients[0].diagnostic


def test_ses_transient_bounce_from_a_plain_email_subscription() -> None:
    # The "email" subscription: SES's JSON as the body, SNS's unsubscribe footer after it;
    # SES gave no status, so its bounce sub-type names one.
    assert _lines("ses_sns_email_transient_mailbox_full.eml") == [
        ("dsn", "busy.inbox@smallhost.example", "4.2.2", False),
    ]


def test_ses_complaint_in_an_sns_json_envelope() -> None:
    (line,) = classify_bytes((DATA / "ses_sns_json_complaint.eml").read_bytes())
    assert (line["kind"], line["recipient"], line["class"]) == (
        "complaint",
        "t.nguyen@freemail-provider.example",
        "complaint",
    )
    report = parse_message((DATA / "ses_sns_json_complaint.eml").read_bytes())
    assert (report.feedback_type, report.original_message_id) == (
        "abuse",
        "<offers-w47-99120@weekly-offers.example>",
    )


def test_ses_delivery_notification_is_not_a_bounce() -> None:
    raw = (
        b"From: AWS Notifications <no-reply@sns.amazonaws.com>\n"
        b"To: b+token@bounces.postline.test\n"
        b"Subject: AWS Notification Message\n"
        b"Content-Type: text/plain\n"
        b"\n"
        b'{"Type":"Notification","Message":"{\\"notificationType\\":\\"Delivery\\",'
        b'\\"delivery\\":{\\"recipients\\":[\\"ok@example.org\\"],'
        b'\\"smtpResponse\\":\\"250 2.6.0 Message received\\"}}"}\n'
    )
    report = parse_message(raw)
    assert (report.kind, report.parser, report.recipients) == (ReportKind.OTHER, "ses", ())


def test_json_that_is_no_ses_notification_is_left_to_the_other_parsers() -> None:
    raw = (
        b"From: Mail Delivery System <MAILER-DAEMON@relay.isp.example>\n"
        b"To: b+token@bounces.postline.test\n"
        b"Subject: Mail delivery failed\n"
        b"\n"
        b'{"note": "not SES"}\n'
        b"The following address(es) failed:\n"
        b"\n"
        b"  gone@isp-customer.example\n"
        b"    550 5.1.1 User unknown\n"
    )
    report = parse_message(raw)
    assert (report.kind, report.parser) == (ReportKind.BOUNCE, "text")
    assert [r.recipient for r in report.recipients] == ["gone@isp-customer.example"]


def test_mailing_list_notices_are_not_bounces() -> None:
    assert classify_bytes((DATA / "mailman_held_for_moderation.eml").read_bytes()) == [
        {
            "kind": "auto_reply",
            "parser": "list:held",
            "reporting_mta": "",
            "recipient": "garden-club-owner@lists.allotment-society.example",
            "original_recipient": "",
            "action": "auto-replied",
            "status": "",
            "delivery_status": "",
            "status_derived": False,
            "smtp_code": 0,
            "permanent": False,
            "class": "auto_reply",
            "reason": "vacation",
            "rule": "list:held",
            "remote_mta": "",
            "diagnostic": "",
        }
    ]
    (line,) = classify_bytes((DATA / "sympa_not_a_member_rejected.eml").read_bytes())
    assert (line["kind"], line["parser"], line["class"]) == (
        "auto_reply",
        "list:non-member",
        "auto_reply",
    )


def test_a_list_sender_without_a_list_notice_is_left_to_the_bounce_parsers() -> None:
    raw = (
        b"From: news-bounces@lists.example.org\n"
        b"To: b+token@bounces.postline.test\n"
        b"Subject: Undelivered mail\n"
        b"\n"
        b"The following address failed:\n"
        b"\n"
        b"  gone@isp-customer.example\n"
        b"    550 5.1.1 User unknown\n"
    )
    report = parse_message(raw)
    assert (report.kind, [r.recipient for r in report.recipients]) == (
        ReportKind.BOUNCE,
        ["gone@isp-customer.example"],
    )


def test_a_bounce_about_a_list_notice_passed_on_by_a_list_is_still_a_bounce() -> None:
    # A list adds List-Id and X-Mailman-Version to the bounces it passes on; the bounce's
    # author (a postmaster) decides, not those headers nor the quoted notice's words.
    raw = (
        b"From: Postmaster@insurer.example\n"
        b"To: b+token@bounces.postline.test\n"
        b"Subject: DELIVERY FAILURE: User jdoe (jdoe@insurer.example) not listed\n"
        b"List-Id: Cycling club <cycling.lists.club.example>\n"
        b"X-Mailman-Version: 2.1.39\n"
        b"\n"
        b"Your message\n"
        b"\n"
        b"  Subject: Your message to Cycling awaits moderator approval\n"
        b"\n"
        b"was not delivered to:\n"
        b"\n"
        b"  jdoe@insurer.example\n"
        b"\n"
        b"because:\n"
        b"\n"
        b"  User jdoe (jdoe@insurer.example) not listed in Domino Directory\n"
    )
    report = parse_message(raw)
    assert (report.kind, [r.recipient for r in report.recipients]) == (
        ReportKind.BOUNCE,
        ["jdoe@insurer.example"],
    )


def test_bounce_about_a_postmaster_names_it() -> None:
    # We mailed postmaster@tiny-shop.example and it failed; the reporting system's own
    # postmaster, given as a contact, is not the recipient.
    assert _lines("exchange_text_about_postmaster.eml") == [
        ("bounce", "postmaster@tiny-shop.example", "5.1.1", True),
    ]


def test_bounce_addressed_to_a_postmaster_names_the_real_recipient() -> None:
    assert _lines("postfix_text_postmaster_copy.eml") == [
        ("bounce", "p.moreau@regional-isp.example", "5.1.1", True),
    ]


def test_reporting_systems_postmaster_is_never_the_recipient() -> None:
    raw = (
        b"From: Mail Delivery System <mailer-daemon@mx2.metro-isp.example>\n"
        b"To: b+token@bounces.postline.test\n"
        b"Subject: failure notice\n"
        b"\n"
        b"Sorry, we were unable to deliver your message to the following address.\n"
        b"\n"
        b"<k.ito@metro-isp.example>:\n"
        b"550: mailbox unavailable\n"
        b"\n"
        b"Questions: postmaster@metro-isp.example\n"
    )
    assert [r.recipient for r in parse_message(raw).recipients] == ["k.ito@metro-isp.example"]
    only_contact = raw.replace(b"<k.ito@metro-isp.example>:\n", b"")
    assert parse_message(only_contact).recipients == ()


def test_exim3_failed_addresses_banner() -> None:
    report = parse_message((DATA / "exim3_failed_addresses_follow.eml").read_bytes())
    assert report.kind is ReportKind.BOUNCE
    got = [(r.recipient, r.status, r.smtp_code, r.permanent) for r in report.recipients]
    # The returned message's other recipient (registrar@, below "Message text follows")
    # is not a failure, and each address keeps its own reason.
    assert got == [
        ("t.becker@physics.old-campus.example", "", 0, True),
        ("alumni-office@old-campus.example", "5.7.1", 554, True),
    ]
    assert "unknown user" in report.recipients[0].diagnostic


def test_exim3_banner_with_the_address_on_the_next_line() -> None:
    raw = (
        b"From: Mail Delivery System <Mailer-Daemon@relay.old-isp.example>\n"
        b"To: b+token@bounces.postline.test\n"
        b"Subject: Mail delivery failed: returning message to sender\n"
        b"\n"
        b"|------------------------- Failed addresses follow: ---------------------|\n"
        b" s.kowalski@old-isp.example\n"
        b"   mailbox is full: retry timeout exceeded\n"
        b"|------------------------- Message text follows: ------------------------|\n"
        b"To: s.kowalski@old-isp.example, other.person@old-isp.example\n"
    )
    (line,) = classify_bytes(raw)
    assert (line["recipient"], line["permanent"]) == ("s.kowalski@old-isp.example", True)


def test_forwarded_bounce_names_its_failed_recipient_not_the_helpdesk() -> None:
    assert _lines("outlook_forwarded_ndr_fyi_note.eml") == [
        ("bounce", "m.dvorak@old-supplier.example", "5.1.1", True),
    ]
    report = parse_message((DATA / "outlook_forwarded_ndr_fyi_note.eml").read_bytes())
    assert report.parser == "forwarded:text"


def test_forwarded_bounce_without_a_failed_address_names_nobody() -> None:
    # Gmail's "Address not found" names no address; the note's addresses (the sender's,
    # the receptionist's) must not stand in for it.
    report = parse_message((DATA / "gmail_forwarded_note_without_failed_address.eml").read_bytes())
    assert (report.kind, report.parser, report.recipients) == (ReportKind.OTHER, "forwarded", ())


def test_bounce_forwarded_as_an_attachment_is_read_without_the_note() -> None:
    raw = (
        b"From: IT Desk <itdesk@lawfirm.example>\n"
        b"To: b+token@bounces.postline.test\n"
        b"Subject: FW: failure notice\n"
        b"MIME-Version: 1.0\n"
        b'Content-Type: multipart/mixed; boundary="fw1"\n'
        b"\n"
        b"--fw1\n"
        b"Content-Type: text/plain\n"
        b"\n"
        b"See attached. Questions: a.partner@lawfirm.example\n"
        b"--fw1\n"
        b"Content-Type: message/rfc822\n"
        b"\n"
        b"From: MAILER-DAEMON@mx.court-registry.example\n"
        b"To: itdesk@lawfirm.example\n"
        b"Subject: failure notice\n"
        b"\n"
        b"Hi. This is the qmail-send program at mx.court-registry.example.\n"
        b"I'm afraid I wasn't able to deliver your message to the following addresses.\n"
        b"This is a permanent error; I've given up. Sorry it didn't work out.\n"
        b"\n"
        b"<filings@court-registry.example>:\n"
        b"Sorry, no mailbox here by that name. (#5.1.1)\n"
        b"--fw1--\n"
    )
    report = parse_message(raw)
    assert (report.kind, report.parser) == (ReportKind.BOUNCE, "forwarded:text")
    assert [(r.recipient, r.status) for r in report.recipients] == [
        ("filings@court-registry.example", "5.1.1")
    ]


def test_a_reply_quoting_an_ordinary_message_is_no_forwarded_bounce() -> None:
    raw = (
        b"From: Jane <jane@customer.example>\n"
        b"To: b+token@bounces.postline.test\n"
        b"Subject: RE: Your invoice\n"
        b"\n"
        b"Thanks, received.\n"
        b"\n"
        b"-----Original Message-----\n"
        b"From: Billing <billing@shop.example>\n"
        b"Sent: Monday, November 30, 2026 9:00 AM\n"
        b"To: jane@customer.example\n"
        b"Subject: Your invoice\n"
        b"\n"
        b"Please find your invoice attached.\n"
    )
    assert parse_message(raw).kind is ReportKind.OTHER


def test_hotmail_jmrp_complaint_without_a_feedback_report_part() -> None:
    (line,) = classify_bytes((DATA / "hotmail_jmrp_complaint.eml").read_bytes())
    assert (line["kind"], line["parser"], line["recipient"], line["class"]) == (
        "complaint",
        "jmrp",
        "lena.hoffmann_77@hotmail.com",
        "complaint",
    )
    report = parse_message((DATA / "hotmail_jmrp_complaint.eml").read_bytes())
    assert report.original_message_id == "<winter-prune-2026-55012@garden-tools-shop.example>"


def test_jmrp_with_a_redacted_recipient_names_the_attached_to_or_nobody() -> None:
    raw = (DATA / "hotmail_jmrp_complaint.eml").read_bytes()
    raw = raw.replace(b"X-HmXmrOriginalRecipient: <lena.hoffmann_77@hotmail.com>\n", b"")
    redacted = parse_message(raw)
    # "xxxxxxx@hotmail.com" is what Microsoft leaves of the To: still the only one named;
    # the VERP token names the real recipient when the intake matches the report.
    assert (redacted.kind, [r.recipient for r in redacted.recipients]) == (
        ReportKind.COMPLAINT,
        ["xxxxxxx@hotmail.com"],
    )


def test_a_hotmail_user_forwarding_a_message_is_no_complaint() -> None:
    raw = (
        b"From: Tom <tom.baker_1984@hotmail.com>\n"
        b"To: b+token@bounces.postline.test\n"
        b"Subject: FW: Winter pruning kit\n"
        b"MIME-Version: 1.0\n"
        b'Content-Type: multipart/mixed; boundary="x"\n'
        b"\n"
        b"--x\n"
        b"Content-Type: text/plain\n"
        b"\n"
        b"Is this still on offer?\n"
        b"--x\n"
        b"Content-Type: message/rfc822\n"
        b"\n"
        b"From: offers@garden-tools-shop.example\n"
        b"To: tom.baker_1984@hotmail.com\n"
        b"Subject: Winter pruning kit\n"
        b"\n"
        b"Sharpen up for winter\n"
        b"--x--\n"
    )
    assert parse_message(raw).kind is not ReportKind.COMPLAINT


def test_japanese_carriers_and_sms_gateways() -> None:
    # Their notices carry no enhanced status; the phrase gives it, and the address is the
    # handset's mailbox, never the carrier's postmaster named in the text.
    expected = {
        "kddi_au_mailbox_full.eml": ("s.yamamoto-k@ezweb.ne.jp", "4.2.2", False, "soft"),
        "kddi_au_user_unknown.eml": ("k-mori.0815@au.com", "5.1.1", True, "hard"),
        "docomo_did_not_receive.eml": ("hana.suzuki-0101@docomo.ne.jp", "5.1.1", True, "hard"),
        "verizon_vtext_invalid_number.eml": ("2025550187@vtext.com", "5.1.1", True, "hard"),
    }
    for name, want in expected.items():
        (line,) = classify_bytes((DATA / name).read_bytes())
        got = (line["recipient"], line["status"], line["permanent"], line["class"])
        assert (name, got) == (name, want)
        assert line["parser"].startswith("carrier:")


def test_a_carriers_own_status_wins_over_its_phrase() -> None:
    raw = (DATA / "kddi_au_user_unknown.eml").read_bytes()
    raw = raw.replace(b"550 user unknown", b"550 5.2.2 user unknown")
    (line,) = classify_bytes(raw)
    assert (line["status"], line["permanent"]) == ("5.2.2", True)
