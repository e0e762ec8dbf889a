"""Issue 17's bad input at the dashboard's revoke: a forged or expired session on the POST itself,
and a CSRF token of another session. Each is refused and nothing is revoked."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from werkzeug.test import Client

from shared.dashboard import session
from shared.runtime import Services
from tests.unit.dashboard.test_dashboard import BASE, issue, sign_in


def test_revoke_with_a_forged_or_expired_session_is_refused(api: Client, services: Services,
                                                            authority_dir: Path) -> None:  # fmt: skip
    serial = str(issue(api, authority_dir, "keep.example.com").serial_number)
    key = session.session_key(services.store)
    now = services.clock.now()
    sess, good = session.new_session(key, "admin", now)
    payload, mac = good.split(".")
    old_sess, expired = session.new_session(key, "admin", now - session.SESSION_LIFETIME - dt.timedelta(seconds=1))
    _, other_key = session.new_session(b"k" * 32, "admin", now)
    revoke = f"{BASE}/dashboard/certificates/{serial}/revoke"
    for cookie, csrf in ((f"{payload}.{mac[:-2]}AA", sess.csrf), (expired, old_sess.csrf), (other_key, sess.csrf),
                         (payload, sess.csrf)):  # fmt: skip
        api.set_cookie(session.SESSION_COOKIE, cookie, domain="localhost")
        r = api.post(revoke, data={"csrf": csrf, "reason": "1", "confirm": "yes"})
        assert r.status_code == 401 and "Set-Cookie" not in r.headers, cookie
    assert services.store.get_revocation(serial) is None


def test_a_csrf_token_from_another_session_is_refused(api: Client, services: Services, authority_dir: Path) -> None:
    serial = str(issue(api, authority_dir, "keep2.example.com").serial_number)
    first = sign_in(api, services)
    second_client = Client(api.application)
    second = sign_in(second_client, services)
    assert first != second
    r = api.post(f"{BASE}/dashboard/certificates/{serial}/revoke", data={"csrf": second, "reason": "1",
                                                                         "confirm": "yes"})  # fmt: skip
    assert r.status_code == 403 and re.search(r"CSRF", r.text)
    assert services.store.get_revocation(serial) is None
