"""The registrar and its guard, driven with a fake clock (RFC 3261 §10.3, RFC 8760)."""

from peerline.sip.fields import parse_auth
from tests.support.sipphone import DOMAIN, Phone, make_element, responses


def alice(**kw: object) -> Phone:
    return Phone(make_element(**kw), "alice", "wonderland", ("198.51.100.7", 5062))  # type: ignore[arg-type]


def register_bytes(phone: Phone, extra: str = "") -> bytes:
    return phone._register_bytes(f"Contact: <sip:alice@198.51.100.7:5062>\r\n{extra}")


def test_register_without_credentials_is_challenged_sha256_first_then_md5() -> None:
    phone = alice()
    [answer] = responses(phone.send(register_bytes(phone), 1000.0))
    assert answer.status == 401
    algorithms = [f.get("algorithm") for f in answer.auth_fields("WWW-Authenticate")]
    assert algorithms == ["SHA-256", "MD5"]


def test_register_with_password_binds_the_contact() -> None:
    phone = alice()
    answer = phone.register(1000.0, expires=600)
    assert answer.status == 200
    [contact] = answer.contacts
    assert str(contact.uri) == "sip:alice@198.51.100.7:5062"
    assert contact.expires == 600


def test_unknown_user_and_wrong_password_get_the_same_answer() -> None:
    element = make_element()
    wrong = Phone(element, "alice", "guess", ("198.51.100.7", 5062))
    nobody = Phone(element, "mallory", "guess", ("198.51.100.8", 5062))
    answers = []
    for phone in (wrong, nobody):
        first = responses(phone.send(register_bytes(phone), 1000.0))[-1]
        header = phone.authorization(first, "REGISTER", f"sip:{DOMAIN}", "Authorization")
        answers.append(responses(phone.send(register_bytes(phone, header), 1000.0))[-1])
    assert [a.status for a in answers] == [401, 401]
    shapes = [[name for name, _ in a.headers if name not in ("Via",)] for a in answers]
    assert shapes[0] == shapes[1]


def test_expires_below_minimum_gets_423_with_min_expires() -> None:
    answer = alice().register(1000.0, expires=10)
    assert answer.status == 423
    assert answer.min_expires == 60


def test_several_contacts_with_q_then_wildcard_removes_all() -> None:
    phone = alice()
    phone.register(1000.0, contact="<sip:alice@198.51.100.7:5062>;q=0.5")
    answer = phone.register(1000.0, contact="<sip:alice@198.51.100.7:5064>;q=0.9")
    assert sorted(c.q or 0 for c in answer.contacts) == [0.5, 0.9]
    bindings = phone.element.store.lookup(f"alice@{DOMAIN}", 1000.0)
    assert [b.q for b in bindings] == [0.9, 0.5]
    gone = phone.register(1000.0, contact="*", expires=0)
    assert gone.status == 200
    assert gone.contacts == ()
    assert phone.element.store.count() == 0


def test_bindings_expire_with_the_clock() -> None:
    phone = alice()
    phone.register(1000.0, expires=120)
    element = phone.element
    element.handle_timer(1100.0)
    assert element.store.count() == 1
    element.handle_timer(1121.0)
    assert element.store.count() == 0


def test_stale_nonce_is_challenged_with_stale_true() -> None:
    phone = alice(nonce_lifetime=30.0)
    first = responses(phone.send(register_bytes(phone), 1000.0))[-1]
    header = phone.authorization(first, "REGISTER", f"sip:{DOMAIN}", "Authorization")
    later = responses(phone.send(register_bytes(phone, header), 1100.0))[-1]
    assert later.status == 401
    assert all(f.get("stale") == "true" for f in later.auth_fields("WWW-Authenticate"))


def test_repeated_failures_lock_the_source_out() -> None:
    wrong = Phone(make_element(), "alice", "guess", ("198.51.100.9", 5062))
    statuses = []
    for _ in range(22):
        first = responses(wrong.send(register_bytes(wrong), 1000.0))[-1]
        if first.status != 401:
            statuses.append(first.status)
            continue
        header = wrong.authorization(first, "REGISTER", f"sip:{DOMAIN}", "Authorization")
        statuses.append(responses(wrong.send(register_bytes(wrong, header), 1000.0))[-1].status)
    assert statuses[:19] == [401] * 19
    assert statuses[-1] == 403


def test_older_cseq_in_same_call_id_is_refused() -> None:
    phone = alice()
    phone.cseq = 10
    phone.register(1000.0)
    phone.cseq = 1
    assert phone.register(1000.0).status == 500


def test_credentials_for_another_user_are_refused() -> None:
    element = make_element()
    bob = Phone(element, "bob", "builder", ("198.51.100.7", 5062))
    data = bob._register_bytes("Contact: <sip:x@198.51.100.7>\r\n").replace(
        b"<sip:bob@", b"<sip:alice@"
    )
    first = responses(bob.send(data, 1000.0))[-1]
    header = bob.authorization(first, "REGISTER", f"sip:{DOMAIN}", "Authorization")
    bob.cseq += 1
    data = bob._register_bytes("Contact: <sip:x@198.51.100.7>\r\n" + header).replace(
        b"<sip:bob@", b"<sip:alice@"
    )
    assert responses(bob.send(data, 1000.0))[-1].status == 403


def test_retransmitted_register_gets_the_cached_answer() -> None:
    phone = alice()
    data = register_bytes(phone)
    [first] = phone.send(data, 1000.0)
    [again] = phone.send(data, 1000.5)
    assert first.data == again.data


def test_outbound_registration_requires_outbound_and_dies_with_its_flow() -> None:
    phone = alice()
    phone.transport, phone.connection = phone.transport.TCP, 7
    phone.element.connection_opened(phone.flow)
    contact = '<sip:alice@10.0.0.2:5062;transport=tcp>;+sip.instance="<urn:uuid:1>";reg-id=1'
    answer = phone.register(1000.0, contact=contact, extra="Supported: outbound, path\r\n")
    assert answer.status == 200
    assert "outbound" in answer.option_tags("Require")
    assert answer.headers.get("Flow-Timer") == "120"
    phone.element.flow_closed(phone.flow, 1001.0)
    assert phone.element.store.count() == 0


def test_scanner_is_dropped_silently() -> None:
    phone = alice()
    data = register_bytes(phone, "User-Agent: friendly-scanner\r\n")
    assert phone.send(data, 1000.0) == []


def test_challenge_fields_parse() -> None:
    phone = alice()
    [answer] = responses(phone.send(register_bytes(phone), 1000.0))
    for value in answer.headers.get_all("WWW-Authenticate"):
        assert parse_auth(value).get("realm") == DOMAIN
