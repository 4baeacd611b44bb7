"""Log options read as dockerd 20.10 reads them (pure): sizes, Go's strconv and regexp
messages, the tag template, the daemon defaults merged into a container's LogConfig.
The expected messages are dockerd 20.10's, seen on this machine."""

from __future__ import annotations

import pytest

from dockerd_py.engine.runtime.logs import merge, validate
from dockerd_py.engine.runtime.logs.logtag import TagError, TagUnsupported, render_tag
from dockerd_py.engine.runtime.logs.options import (
    atoi,
    check_regexp,
    human_size,
    parse_bool,
    ram_in_bytes,
)
from dockerd_py.errors import InvalidParameter


def test_sizes_as_go_units() -> None:
    assert human_size("10k") == 10_000 and human_size("1.5k") == 1500
    assert human_size("10 MB") == 10_000_000 and human_size("10Ki") == 10_000
    assert ram_in_bytes("4m") == 4 << 20
    for bad in ("abc", "-1", "", "10x", "1 0k"):
        with pytest.raises(ValueError, match=f"^invalid size: '{bad}'$"):
            human_size(bad)


def test_strconv_as_go() -> None:
    assert atoi("+3") == 3 and atoi("-1") == -1
    for bad, quoted in (("x", '"x"'), ("", '""'), (" 3", '" 3"'), ("3\n", '"3\\n"')):
        with pytest.raises(ValueError) as e:
            atoi(bad)
        assert str(e.value) == f"strconv.Atoi: parsing {quoted}: invalid syntax"
    assert parse_bool("T") is True and parse_bool("0") is False
    with pytest.raises(ValueError, match='^strconv.ParseBool: parsing "yes": invalid syntax$'):
        parse_bool("yes")


@pytest.mark.parametrize(("pattern", "message"), [
    ("(", "error parsing regexp: missing closing ): `(`"),
    ("[a", "error parsing regexp: missing closing ]: `[a`"),
    ("a**", "error parsing regexp: invalid nested repetition operator: `**`"),
    ("*", "error parsing regexp: missing argument to repetition operator: `*`"),
])
def test_regexp_errors_as_go(pattern: str, message: str) -> None:
    with pytest.raises(ValueError) as e:
        check_regexp(pattern)
    assert str(e.value) == message
    check_regexp("^[A-Z_]+$")


FIELDS = {"ID": "4b356bd18b71", "Name": "tg", "ImageID": "sha256:25482",
          "ImageName": "busybox", "DaemonName": "docker", "ContainerName": "/tg"}


@pytest.mark.parametrize(("template", "tag"), [
    ("{{.ImageID}}|{{.ImageName}}|{{.Name}}|{{.ID}}|{{.DaemonName}}|{{.ContainerName}}",
     "sha256:25482|busybox|tg|4b356bd18b71|docker|/tg"),
    ("{{.Name | upper}}-{{lower .Name}}", "TG-tg"),
    ("a {{- .Name -}} b", "atgb"),
    ('{{/* c */}}x{{"lit"}}', "xlit"),
    ("}}", "}}"),
])
def test_tag_templates(template: str, tag: str) -> None:
    assert render_tag(template, FIELDS) == tag


@pytest.mark.parametrize(("template", "message"), [
    ("{{.Bad", "template: log-tag:1: unclosed action"),
    ("{{nope}}", 'template: log-tag:1: function "nope" not defined'),
    ("{{.Name}", "template: log-tag:1: bad character U+007D '}'"),
    ("{{end}}", "template: log-tag:1: unexpected {{end}}"),
    ("{{ }}", "template: log-tag:1: missing value for command"),
    ("a{{.Nope}}", 'template: log-tag:1:3: executing "log-tag" at <.Nope>: '
                   "can't evaluate field Nope in type *logger.Info"),
    ("x\n{{.name}}", 'template: log-tag:2:2: executing "log-tag" at <.name>: '
                     "can't evaluate field name in type *logger.Info"),
    ("{{.Name.Foo}}", 'template: log-tag:1:7: executing "log-tag" at <.Name.Foo>: '
                      "can't evaluate field Foo in type string"),
    ("{{upper .Name .Name}}", 'template: log-tag:1:2: executing "log-tag" at <upper>: '
                              "wrong number of args for upper: want 1 got 2"),
])
def test_tag_errors_as_dockerd(template: str, message: str) -> None:
    with pytest.raises(TagError) as e:
        render_tag(template, FIELDS)
    assert str(e.value) == message


def test_tag_beyond_the_supported_part() -> None:
    for template in ("{{if .Name}}x{{end}}", "{{json .Name}}", "{{.ContainerLabels}}"):
        with pytest.raises(TagUnsupported):
            render_tag(template, FIELDS)


def test_daemon_defaults_merged_as_dockerd() -> None:
    defaults = {"max-size": "1m", "cache-disabled": "true"}
    assert merge({"Type": "", "Config": {}}, "json-file", defaults) == \
        {"Type": "json-file", "Config": defaults}
    # another driver takes only the cache-* options of the daemon's
    assert merge({"Type": "local"}, "json-file", defaults) == \
        {"Type": "local", "Config": {"cache-disabled": "true"}}
    assert merge(None, "local", {}) == {"Type": "local", "Config": {}}
    assert merge({"Config": {"max-size": "2m"}}, "json-file", defaults)["Config"] == \
        {"max-size": "2m", "cache-disabled": "true"}


def test_driver_option_names() -> None:
    validate("none", {"anything": "x", "mode": "bad"})
    validate("journald", {"tag": "x", "labels": "a", "cache-max-size": "x"})
    for driver, opts, message in (
            ("syslog", {}, 'error looking up logging plugin syslog: plugin "syslog" not found'),
            ("local", {"tag": "x"}, "unknown log opt 'tag' for log driver local"),
            ("journald", {"max-size": "1"}, "unknown log opt 'max-size' for journald log driver"),
            ("json-file", {"cache-foo": "1"}, "unknown log opt 'cache-foo' for json-file log "
                                              "driver")):
        with pytest.raises(InvalidParameter) as e:
            validate(driver, opts)
        assert str(e.value) == message
