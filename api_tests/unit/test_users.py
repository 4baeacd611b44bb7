"""`-u user[:group]` resolution against an image's /etc/passwd and /etc/group text."""

from __future__ import annotations

import pytest

from dockerd_py.engine.runtime.users import (
    ResolvedUser,
    Unreadable,
    UserLookupError,
    parse_group,
    parse_passwd,
    resolve_user,
)
from dockerd_py.errors import InvalidParameter

PASSWD = """\
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
user:x:1000:1000:user:/home/user:/bin/sh
app:x:1001:1001::/srv/app:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
"""
GROUP = """\
# comments and blank lines are allowed in /etc/group

root:x:0:
daemon:x:1:
user:x:1000:
app:x:1001:
audio:x:29:user,app
video:x:44:app
nogroup:x:65534:
"""


def test_parse_passwd_and_group() -> None:
    users = parse_passwd(PASSWD)
    assert [(u.name, u.uid, u.gid, u.home) for u in users][:3] == [
        ("root", 0, 0, "/root"), ("daemon", 1, 1, "/usr/sbin"), ("user", 1000, 1000, "/home/user")]
    groups = parse_group(GROUP)
    assert [g.name for g in groups][:2] == ["root", "daemon"]
    assert next(g for g in groups if g.name == "audio").members == ("user", "app")


def test_malformed_numbers_read_as_zero_and_short_lines_pad() -> None:
    (u,) = parse_passwd("odd:x:abc:12x\n")
    assert (u.uid, u.gid, u.home) == (0, 0, "")


def test_empty_spec_is_root_with_its_home() -> None:
    assert resolve_user("", PASSWD, GROUP) == ResolvedUser(0, 0, (0,), "/root")


def test_name_takes_primary_group_and_memberships() -> None:
    assert resolve_user("app", PASSWD, GROUP) == ResolvedUser(1001, 1001, (1001, 29, 44),
                                                              "/srv/app")


def test_uid_found_in_passwd_is_that_user() -> None:
    u = resolve_user("1000", PASSWD, GROUP)
    assert (u.uid, u.gid, u.additional_gids, u.home) == (1000, 1000, (1000, 29), "/home/user")


def test_unknown_numeric_uid_is_used_as_is() -> None:
    assert resolve_user("4242", PASSWD, GROUP) == ResolvedUser(4242, 0, (0,), "/")


def test_uid_gid_numbers() -> None:
    # Explicit group: no memberships from /etc/group (moby's rule).
    assert resolve_user("1000:1000", PASSWD, GROUP) == ResolvedUser(1000, 1000, (1000,),
                                                                    "/home/user")
    assert resolve_user("5000:6000", PASSWD, GROUP) == ResolvedUser(5000, 6000, (6000,), "/")


def test_name_and_group_name() -> None:
    u = resolve_user("user:video", PASSWD, GROUP)
    assert (u.uid, u.gid, u.additional_gids) == (1000, 44, (44,))


def test_missing_user_message_is_dockers() -> None:
    with pytest.raises(UserLookupError) as e:
        resolve_user("x", PASSWD, GROUP)
    assert str(e.value) == "unable to find user x: no matching entries in passwd file"
    assert isinstance(e.value, InvalidParameter)


def test_missing_group_message_is_dockers() -> None:
    with pytest.raises(UserLookupError,
                       match="^unable to find group staff: no matching entries in group file$"):
        resolve_user("user:staff", PASSWD, GROUP)


def test_missing_files() -> None:
    # No /etc/passwd: numbers work, names cannot be found.
    assert resolve_user("1000:1000", None, None) == ResolvedUser(1000, 1000, (1000,), "/")
    with pytest.raises(UserLookupError, match="unable to find user app"):
        resolve_user("app", None, None)
    with pytest.raises(UserLookupError, match="unable to find group g"):
        resolve_user("0:g", PASSWD, None)


def test_out_of_range_ids() -> None:
    with pytest.raises(UserLookupError, match="must be in range 0-2147483647"):
        resolve_user("-1", PASSWD, GROUP)
    with pytest.raises(UserLookupError, match="must be in range"):
        resolve_user("0:99999999999", PASSWD, GROUP)


def test_group_add_by_name_and_number_without_duplicates() -> None:
    u = resolve_user("user", PASSWD, GROUP, group_add=["video", "29", "777", "1000"])
    assert u.additional_gids == (1000, 29, 44, 777)
    with pytest.raises(UserLookupError, match="unable to find group nope"):
        resolve_user("user", PASSWD, GROUP, group_add=["nope"])


def test_first_matching_line_wins() -> None:
    passwd = "dup:x:10:10::/a:/bin/sh\ndup:x:11:11::/b:/bin/sh\n"
    assert resolve_user("dup", passwd, "") == ResolvedUser(10, 10, (10,), "/a")


def test_numeric_user_is_never_a_name() -> None:
    # A user literally named "1001" does not shadow uid 1001.
    passwd = "1001:x:5:5::/five:/bin/sh\napp:x:1001:1001::/srv/app:/bin/sh\n"
    assert resolve_user("1001", passwd, "").home == "/srv/app"


def test_an_unreadable_passwd_fails_every_lookup_in_runcs_words() -> None:
    bad = Unreadable("open /etc/passwd: not a regular file")
    for spec, shown in (("", "0"), ("app", "app"), ("1000", "1000"), ("0:0", "0")):
        with pytest.raises(UserLookupError) as e:
            resolve_user(spec, bad, GROUP)
        assert str(e.value) == f"unable to find user {shown}: open /etc/passwd: not a regular file"


def test_an_unreadable_group_fails_every_lookup_after_the_passwd_one() -> None:
    bad = Unreadable("read /etc/group: is a directory")
    for spec, shown in (("", "root"), ("app", "app"), ("4242", "4242"), ("user:0", "user")):
        with pytest.raises(UserLookupError) as e:
            resolve_user(spec, PASSWD, bad)
        assert str(e.value) == f"unable to find groups for spec {shown}: " \
            "read /etc/group: is a directory"
    with pytest.raises(UserLookupError, match="^unable to find user nope: no matching"):
        resolve_user("nope", PASSWD, bad)


def test_lines_split_at_newlines_only_and_lazily() -> None:
    # Go's bufio.ScanLines: "\r" alone or "\f" do not end a line; a trailing "\r" is trimmed.
    assert [u.name for u in parse_passwd("a:x:1:1::/:\rb:x:2:2::/:\r\nc:x:3:3::/:\f")] \
        == ["a", "c"]
    many = "x:x:5:5::/:\n" * 200_000 + "app:x:7:7::/app:\n"
    assert resolve_user("app", many, None) == ResolvedUser(7, 7, (7,), "/app")
