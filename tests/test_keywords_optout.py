"""Opt-outs said the way people say them: a keyword with please/thanks/ya/kak around it, a repeated keyword,
everyday Indonesian. Each is confirmed and honoured; a sentence that only mentions stopping is not an opt-out."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from aftercare.db import session_scope
from aftercare.inbound.keywords import Keyword, classify
from aftercare.models import AuditEntry
from tests.cli_helpers import cli_json
from tests.test_compliance_keywords import _opted_out
from tests.test_compliance_keywords import patient as patient_fixture

# The same patient as the other keyword tests: one clinic, a filler three hours ago.
patient = patient_fixture

PATIENT = "+6281234567890"

WRAPPED_STOPS = [
    # the kind as reported
    "Stop please", "Stop. Thank you", "STOP STOP", "stop ya", "Please stop", "stop!!", "UNSUBSCRIBE me",
    # new inputs of the same kind
    "stop pls", "STOP now", "Stop, thanks!", "stop stop stop", "please, STOP.", "Quit please", "just stop",
    "cancel thank you", "berhenti ya kak", "Stop kak, makasih", "tolong stop", "mohon berhenti", "stop dong",
    "STOP!! thx", "plz unsubscribe me", "Stop aja, terima kasih",
]
INDONESIAN_STOPS = [
    # the kind as reported
    "gak usah kirim sms lagi", "udah ga usah sms lagi kak", "tolong berhenti kirim", "ga usah dikirimin lagi ya",
    # new inputs of the same kind
    "nggak usah kirim pesan lagi ya", "ga perlu dikirimi sms lagi kak", "udah gk usah di sms lagi",
    "tidak usah kirim pengingat lagi", "gak usah ingetin lagi kak", "ga usah kirim notif", "stop kirim sms ya",
]
NOT_OPT_OUTS = [
    # the kind as reported
    "it won't stop bleeding", "should I stop my retinol?", "stop worrying me, is this normal?",
    "the swelling doesn't stop", "bengkaknya gak berhenti", "kapan boleh stop pakai krim?",
    # new inputs of the same kind: stopping a symptom or a product, asking, and "it has stopped"
    "please make it stop, it hurts", "can I stop icing now please?", "the itching won't stop pls help",
    "stop the tingling?", "udah berhenti kak", "darahnya sudah berhenti ya", "perihnya gak berhenti2 kak",
    "boleh stop minum obat sekarang?", "gak usah kirim foto lagi?", "ga usah sms lagi ke dokter?",
    "gak usah kirim foto ya kak", "help me please", "ok thanks", "ya kak",
]




def _consent_audited() -> bool:
    with session_scope() as session:
        return session.scalar(select(AuditEntry.id).where(AuditEntry.action == "consent.sms_opted_out")) is not None


@pytest.mark.parametrize("text", WRAPPED_STOPS)
def test_a_stop_keyword_wrapped_in_politeness_opts_out_confirms_and_is_not_triaged(patient, text):
    result = cli_json("reply", "--from", PATIENT, text)
    assert _opted_out() and _consent_audited()
    assert result["handling"] == "keyword:stop"
    assert result["answer"].count("START") == 1
    assert result["level"] is None and result["review_id"] is None


@pytest.mark.parametrize("text", INDONESIAN_STOPS)
def test_everyday_indonesian_opt_outs_are_confirmed_and_honoured(patient, text):
    result = cli_json("reply", "--from", PATIENT, text)
    assert _opted_out() and _consent_audited()
    assert result["handling"] == "keyword:stop"
    assert result["answer"].count("START") == 1


@pytest.mark.parametrize("text", NOT_OPT_OUTS)
def test_a_sentence_that_only_mentions_stopping_keeps_consent(patient, text):
    result = cli_json("reply", "--from", PATIENT, text)
    assert not _opted_out() and not _consent_audited()
    assert not result["handling"].startswith("keyword:stop")
    assert "START" not in (result["answer"] or "")


@pytest.mark.parametrize("text", ["START please", "start ya kak", "Start. Thanks", "UNSTOP pls", "mulai dong"])
def test_a_start_keyword_wrapped_in_politeness_opts_back_in(patient, text):
    cli_json("reply", "--from", PATIENT, "STOP")
    result = cli_json("reply", "--from", PATIENT, text)
    assert not _opted_out()
    assert result["handling"] == "keyword:start"


def test_two_different_keywords_in_one_message_are_neither():
    assert classify("stop start")[0] is None
    assert classify("STOP HELP")[0] is None


@pytest.mark.parametrize("text", ["help please", "HELP me", "help!! thanks"])
def test_a_wrapped_help_is_read_as_a_reply_not_answered_with_the_help_text(text):
    # "help me please" may be a plea: a person reads it instead of a robot answering with our number.
    assert classify(text) == (None, False)
    assert classify("HELP.") == (Keyword.HELP, True)
