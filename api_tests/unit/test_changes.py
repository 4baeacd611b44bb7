"""dockerd_py.engine.images.changes: moby's BuildFromConfig behaviour for commit/import -c."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockerd_py.engine.images.changes import InvalidChange, apply_changes, go_duration, port_keys
from dockerd_py.engine.runtime.signals import parse_signal
from dockerd_py.errors import InvalidParameter

BUSYBOX: dict[str, Any] = {
    "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
    "Cmd": ["sh"],
}


def apply(*changes: str, config: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
    return apply_changes(BUSYBOX if config is None else config, list(changes), **kw)


def error(*changes: str, config: dict[str, Any] | None = None) -> str:
    with pytest.raises(InvalidChange) as exc:
        apply(*changes, config=config)
    assert isinstance(exc.value, InvalidParameter)
    return str(exc.value)


def test_moby_commit_change_suite() -> None:  # integration-cli TestCommitChange
    got = apply("EXPOSE 8080", "ENV DEBUG true", "ENV test 1", "ENV PATH /foo", "LABEL foo bar",
                'CMD ["/bin/sh"]', "WORKDIR /opt", 'ENTRYPOINT ["/bin/sh"]', "USER testuser",
                "VOLUME /var/lib/docker", "ONBUILD /usr/local/bin/python-build --dir /app/src")
    assert got == {
        "ExposedPorts": {"8080/tcp": {}},
        "Env": ["PATH=/foo", "DEBUG=true", "test=1"],  # PATH replaced in place
        "Labels": {"foo": "bar"},
        "Cmd": ["/bin/sh"],  # a CMD in the same batch survives ENTRYPOINT
        "WorkingDir": "/opt",
        "Entrypoint": ["/bin/sh"],
        "User": "testuser",
        "Volumes": {"/var/lib/docker": {}},
        "OnBuild": ["/usr/local/bin/python-build --dir /app/src"],
    }


def test_input_untouched_and_no_changes_copies() -> None:
    base = copy.deepcopy(BUSYBOX)
    apply("ENV A=1", "CMD x", config=base)
    assert base == BUSYBOX
    same = apply_changes(base, [])
    assert same == base and same is not base


def test_commit_inherits_env() -> None:  # integration/image TestCommitInheritsEnv
    first = apply("ENV PATH=/bin", config={})
    assert first["Env"] == ["PATH=/bin"]
    assert apply("ENV PATH=/usr/bin:$PATH", config=first)["Env"] == ["PATH=/usr/bin:/bin"]


@pytest.mark.parametrize(("change", "env"), [
    ("ENV a=b c=d", ["a=b", "c=d"]),
    ('ENV a="hello world" b=\'x  y\'', ["a=hello world", "b=x  y"]),
    ("ENV a=hello\\ world", ["a=hello world"]),
    ("ENV a b  c", ["a=b  c"]),  # legacy form: the rest of the line
    ('ENV a "b c"', ["a=b c"]),
    ("ENV a=1 b=$a", ["a=1", "b="]),  # expanded before the instruction applies
    ("ENV a=${UNSET:-dflt} b=${HOME:+set} c=${HOME-x}", ["HOME=/root", "a=dflt", "b=set",
                                                         "c=/root"]),
    ("ENV a='$HOME' b=\"$HOME\" c=\\$HOME", ["HOME=/root", "a=$HOME", "b=/root", "c=$HOME"]),
    ("ENV e=", ["e="]),
    ("ENV HOME=/x HOME=/y", ["HOME=/y"]),
])
def test_env(change: str, env: list[str]) -> None:
    base = {"Env": ["HOME=/root"]} if "HOME" in change else {}
    assert apply(change, config=base)["Env"] == env


def test_env_sees_earlier_instructions() -> None:
    assert apply("ENV a=1", "ENV b=$a${a}", config={})["Env"] == ["a=1", "b=11"]


@pytest.mark.parametrize(("change", "message"), [
    ("ENV", "ENV requires at least one argument"),
    ("ENV a", "ENV must have two arguments"),
    ("ENV a=1 b", 'Syntax error - can\'t find = in "b". Must be of the form: name=value'),
    ("ENV =x", "ENV names can not be blank"),
    ("LABEL a", "LABEL must have two arguments"),
    ("ENV --foo a=b", "unknown flag: --foo"),
    ("ENV a=${b:-x", "failed to process \"${b:-x\": syntax error: missing '}'"),
    ("ENV a=${b", 'failed to process "${b": unsupported modifier (\ufffd) in substitution'),
    ("ENV a=${}", 'failed to process "${}": syntax error: bad substitution'),
    ("ENV a=${b:?must be set}", 'Syntax error - can\'t find = in "be". Must be of the form: '
                                "name=value"),  # words are split before expansion
    ('ENV a="${b:?must be set}"', 'failed to process "\\"${b:?must be set}\\"": b: must be set'),
    ("ENV a=${b?}", 'failed to process "${b?}": b: is not allowed to be unset'),
    ("ENV a=${b%x}", 'failed to process "${b%x}": unsupported modifier (%) in substitution'),
    ('ENV a="x', 'failed to process "\\"x": unexpected end of statement while looking for '
                 "matching double-quote"),
])
def test_env_errors(change: str, message: str) -> None:
    assert error(change, config={}) == message


@pytest.mark.parametrize(("changes", "cmd", "entrypoint"), [
    (['CMD ["echo", "hi"]'], ["echo", "hi"], None),
    (["CMD echo $HOME  hi"], ["/bin/sh", "-c", "echo $HOME  hi"], None),  # no expansion
    (["CMD []"], [], None),
    (["CMD"], ["/bin/sh", "-c"], None),  # moby prepends the shell to an empty shell form
    (['CMD ["a", 1]x'], ["/bin/sh", "-c", '["a", 1]x'], None),  # not JSON: shell form
    (["ENTRYPOINT top -b"], None, ["/bin/sh", "-c", "top -b"]),  # resets the base CMD
    (["ENTRYPOINT []"], None, None),
    (["ENTRYPOINT"], None, None),
    (["CMD x", "ENTRYPOINT y"], ["/bin/sh", "-c", "x"], ["/bin/sh", "-c", "y"]),
    (["ENTRYPOINT y", 'CMD ["x"]'], ["x"], ["/bin/sh", "-c", "y"]),
    (["CMD []", "ENTRYPOINT y"], None, ["/bin/sh", "-c", "y"]),  # an empty CMD does not count
])
def test_cmd_and_entrypoint(changes: list[str], cmd: list[str] | None,
                            entrypoint: list[str] | None) -> None:
    got = apply(*changes)
    assert got["Cmd"] == cmd
    assert got.get("Entrypoint") == entrypoint


def test_shell_prefix() -> None:
    assert apply("CMD x", shell=("/bin/bash", "-lc"))["Cmd"] == ["/bin/bash", "-lc", "x"]
    with_shell = {"Shell": ["/bin/ash", "-eo"], "ArgsEscaped": True}
    got = apply("ENTRYPOINT x", config=with_shell)
    assert got["Entrypoint"] == ["/bin/ash", "-eo", "x"] and got["ArgsEscaped"] is False


def test_json_array_of_non_strings_fails_at_parse_time() -> None:
    message = "when using JSON array syntax, arrays must be comprised of strings only"
    assert error('CMD ["a", 1]') == message
    assert error("USER x", 'RUN ["a", null]') == message  # before "RUN is not a valid ..."


@pytest.mark.parametrize(("change", "ports"), [
    ("EXPOSE 80", ["80/tcp"]),
    ("EXPOSE 80/udp 53/UDP", ["53/udp", "80/udp"]),
    ("EXPOSE 8000-8002", ["8000/tcp", "8001/tcp", "8002/tcp"]),
    ("EXPOSE 90-90/sctp", ["90/sctp"]),
    ("EXPOSE 8080:80 127.0.0.1:8443:443/tcp [::1]:1:2", ["2/tcp", "443/tcp", "80/tcp"]),
    ("EXPOSE $PORTS", ["1/tcp", "2/tcp"]),
    ("EXPOSE 0", ["0/tcp"]),
])
def test_expose(change: str, ports: list[str]) -> None:
    got = apply(change, config={"Env": ["PORTS=1 2"], "ExposedPorts": {"2/tcp": {}}})
    assert sorted(got["ExposedPorts"]) == sorted({*ports, "2/tcp"})


@pytest.mark.parametrize(("change", "message"), [
    ("EXPOSE", "EXPOSE requires at least one argument"),
    ("EXPOSE 80/foo", "invalid proto: foo"),
    ("EXPOSE abc", "invalid containerPort: abc"),
    ("EXPOSE 65536", "invalid containerPort: 65536"),
    ("EXPOSE 90-80", "invalid containerPort: 90-80"),
    ("EXPOSE /tcp", "no port specified: /tcp<empty>"),
    ("EXPOSE x:80", "invalid hostPort: x"),
    ("EXPOSE 1-2:80-82", "invalid ranges specified for container and host Ports: 80-82 and 1-2"),
    ("EXPOSE nope:1:80", "invalid IP address: nope"),
])
def test_expose_errors(change: str, message: str) -> None:
    assert error(change) == message


def test_labels() -> None:
    got = apply('LABEL "com.example.vendor"="ACME Inc" version=1.0', 'LABEL Maintainer="Tests"',
                "LABEL foo bar", config={"Labels": {"version": "0.9", "keep": "x"}})
    assert got["Labels"] == {"com.example.vendor": "ACME Inc", "version": "1.0", "keep": "x",
                             "Maintainer": "Tests", "foo": "bar"}


@pytest.mark.parametrize(("change", "volumes"), [
    ("VOLUME /data", ["/data"]),
    ("VOLUME /a /b", ["/a", "/b"]),
    ('VOLUME ["/a", "/b c"]', ["/a", "/b c"]),
    ("VOLUME $HOME/x", ["/root/x"]),
])
def test_volume(change: str, volumes: list[str]) -> None:
    got = apply(change, config={"Env": ["HOME=/root"], "Volumes": None})
    assert got["Volumes"] == {v: {} for v in volumes}


def test_volume_errors() -> None:
    assert error("VOLUME") == "VOLUME requires at least one argument"
    assert error("VOLUME --x") == "VOLUME requires at least one argument"  # checked first
    assert error("VOLUME --x /a") == "unknown flag: --x"
    assert error('VOLUME [" "]') == "VOLUME specified can not be an empty string"
    assert error("VOLUME $UNSET") == "VOLUME specified can not be an empty string"


@pytest.mark.parametrize(("workdir", "changes", "expected"), [
    ("", ["WORKDIR /opt"], "/opt"),
    ("/opt", ["WORKDIR app"], "/opt/app"),
    ("/opt", ["WORKDIR app", "WORKDIR ../lib"], "/opt/lib"),
    ("/opt", ["WORKDIR /a/../b/"], "/b"),
    ("", ["WORKDIR rel"], "/rel"),
    ("/", ["WORKDIR //x//y"], "/x/y"),
    ("/opt", ["WORKDIR $HOME/w"], "/root/w"),
    ("/opt", ["WORKDIR with space"], "/opt/with space"),
])
def test_workdir(workdir: str, changes: list[str], expected: str) -> None:
    config = {"WorkingDir": workdir, "Env": ["HOME=/root"]}
    assert apply(*changes, config=config)["WorkingDir"] == expected


def test_workdir_errors() -> None:
    assert error("WORKDIR") == "WORKDIR requires exactly one argument"
    assert error("WORKDIR $UNSET") == "cannot normalize nothing"


def test_user_and_stopsignal() -> None:
    got = apply("USER ${U:-nobody}:1000", "STOPSIGNAL SIGKILL", config={})
    assert (got["User"], got["StopSignal"]) == ("nobody:1000", "SIGKILL")
    assert apply("STOPSIGNAL $S", config={"Env": ["S=9"]})["StopSignal"] == "9"
    assert error("USER") == "USER requires exactly one argument"
    assert error("STOPSIGNAL FOO") == "invalid signal: FOO"
    assert error("STOPSIGNAL 0") == "invalid signal: 0"


@pytest.mark.parametrize(("raw", "number"), [
    ("SIGTERM", 15), ("term", 15), ("KILL", 9), ("9", 9), ("SIGRTMIN+3", 37), ("RTMAX-1", 63),
    ("+5", 5), ("-3", -3), ("sigusr1", 10),
])
def test_parse_signal(raw: str, number: int) -> None:
    assert parse_signal(raw) == number


@pytest.mark.parametrize("raw", ["", "0", "SIGFOO", "SIG", "1.5", " 9", "99999999999999999999"])
def test_parse_signal_invalid(raw: str) -> None:
    with pytest.raises(InvalidChange, match="^invalid signal: "):
        parse_signal(raw)


@pytest.mark.parametrize(("change", "health"), [
    ("HEALTHCHECK NONE", {"Test": ["NONE"]}),
    ("HEALTHCHECK none", {"Test": ["NONE"]}),
    ("HEALTHCHECK CMD curl -f http://localhost/", {"Test": ["CMD-SHELL", "curl -f http://localhost/"]}),
    ('HEALTHCHECK cmd ["curl", "-f"]', {"Test": ["CMD", "curl", "-f"]}),
    ("HEALTHCHECK --interval=5s --timeout=1m30s --start-period=0 --start-interval=1.5ms "
     "--retries=3 CMD true",
     {"Test": ["CMD-SHELL", "true"], "Interval": 5_000_000_000, "Timeout": 90_000_000_000,
      "StartInterval": 1_500_000, "Retries": 3}),
    ("HEALTHCHECK --retries=0 --interval= CMD true", {"Test": ["CMD-SHELL", "true"]}),
])
def test_healthcheck(change: str, health: dict[str, Any]) -> None:
    assert apply(change)["Healthcheck"] == health


@pytest.mark.parametrize(("change", "message"), [
    ("HEALTHCHECK", "HEALTHCHECK requires at least one argument"),
    ("HEALTHCHECK NONE x", "HEALTHCHECK NONE takes no arguments"),
    ("HEALTHCHECK CMD", "Missing command after HEALTHCHECK CMD"),
    ("HEALTHCHECK FOO x", 'Unknown type "FOO" in HEALTHCHECK (try CMD)'),
    ("HEALTHCHECK --interval=1us CMD x", 'Interval "interval" cannot be less than 1ms'),
    ("HEALTHCHECK --timeout=5 CMD x", 'time: missing unit in duration "5"'),
    ("HEALTHCHECK --timeout=5x CMD x", 'time: unknown unit "x" in duration "5x"'),
    ("HEALTHCHECK --retries=-1 CMD x", "--retries cannot be negative (-1)"),
    ("HEALTHCHECK --retries=a CMD x", 'strconv.ParseInt: parsing "a": invalid syntax'),
    ("HEALTHCHECK --interval CMD x", "missing a value on flag: --interval"),
    ("HEALTHCHECK --interval=1s --interval=2s CMD x", "duplicate flag specified: --interval"),
    ("HEALTHCHECK --bogus=1 CMD x", "unknown flag: --bogus"),
])
def test_healthcheck_errors(change: str, message: str) -> None:
    assert error(change) == message


@pytest.mark.parametrize(("text", "nanoseconds"), [
    ("0", 0), ("1h", 3_600_000_000_000), ("1.5h", 5_400_000_000_000), ("300ms", 300_000_000),
    ("1m30s", 90_000_000_000), (".5s", 500_000_000), ("1us", 1000), ("1µs", 1000),
    ("2ns", 2), ("-1s", -1_000_000_000), ("+1s", 1_000_000_000), ("1h1m1s1ms", 3_661_001_000_000),
])
def test_go_duration(text: str, nanoseconds: int) -> None:
    assert go_duration(text) == nanoseconds


@pytest.mark.parametrize("text", ["", "s", ".s", "1", "1.5", "-", "1d", "1h-2m"])
def test_go_duration_invalid(text: str) -> None:
    with pytest.raises(InvalidChange, match="^time: "):
        go_duration(text)


def test_onbuild() -> None:
    got = apply("ONBUILD RUN echo $HOME", "onbuild  ADD . /app", config={"OnBuild": ["X"]})
    assert got["OnBuild"] == ["X", "RUN echo $HOME", "ADD . /app"]
    assert error("ONBUILD") == "ONBUILD requires at least one argument"
    assert error("ONBUILD ONBUILD RUN x") == "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"
    assert error("ONBUILD from x") == "FROM isn't allowed as an ONBUILD trigger"
    assert error("ONBUILD ENV a") == "ENV must have two arguments"


@pytest.mark.parametrize(("changes", "message"), [
    (["RUN echo hi"], "RUN is not a valid change command"),
    (["run echo hi"], "run is not a valid change command"),
    (["FOO bar"], "FOO is not a valid change command"),
    (["ENV a=1", "COPY . /"], "COPY is not a valid change command"),
    (["SHELL [\"/bin/bash\"]"], "SHELL is not a valid change command"),
    (["RUN x", "ENV a"], "ENV must have two arguments"),  # the parser reads all lines first
    (["MAINTAINER me"], "MAINTAINER is not a valid change command"),
    ([""], "file with no instructions"),
    (["# only a comment", "   "], "file with no instructions"),
])
def test_invalid_changes(changes: list[str], message: str) -> None:
    assert error(*changes) == message


def test_multiline_values_comments_and_continuations() -> None:
    got = apply("ENV a=1\nLABEL x=y", "# a comment\nENV b=2 \\\n  # inside\n\n  c=3",
                "  user   root  ", config={})
    assert got == {"Env": ["a=1", "b=2", "c=3"], "Labels": {"x": "y"}, "User": "root"}


def test_escape_directive() -> None:
    assert apply("# escape=`\nENV a=x\\y b=1`\n c=2", config={})["Env"] == [
        "a=x\\y", "b=1", "c=2"]
    assert apply("ENV a=x\\y", config={})["Env"] == ["a=xy"]
    assert error("# escape=x\nENV a=b") == "invalid escape token 'x' does not match ` or \\"


def test_flags_after_double_dash_and_quoted_flag_values() -> None:
    got = apply('HEALTHCHECK --interval="2s" CMD true')["Healthcheck"]
    assert got["Interval"] == 2_000_000_000
    assert apply("USER -- root")["User"] == "root"  # "--" ends the flags
    assert error("USER --x root") == "unknown flag: --x"


# -- properties ------------------------------------------------------------------------------

_safe = st.text(st.characters(blacklist_characters="\"$\\", blacklist_categories=("Cs",)),
                max_size=12)
_key = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)


@given(_key, _safe)
def test_env_double_quoted_value_roundtrip(key: str, value: str) -> None:
    if "\n" in value or "\r" in value:
        return  # a newline would start a new instruction
    assert apply(f'ENV {key}="{value}"', config={})["Env"] == [f"{key}={value}"]


@given(st.text(max_size=30))
def test_only_invalid_change_escapes(text: str) -> None:
    try:
        apply_changes({"Env": ["A=1"]}, [text])
    except InvalidChange:
        pass


@given(st.integers(0, 65535), st.integers(0, 20), st.sampled_from(["", "/tcp", "/udp"]))
def test_port_ranges(start: int, span: int, proto: str) -> None:
    end = min(start + span, 65535)
    keys = port_keys(f"{start}-{end}{proto}")
    assert keys == [f"{p}/{proto[1:] or 'tcp'}" for p in range(start, end + 1)]


_units = {"ns": 1, "us": 1000, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}


@given(st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from(sorted(_units))), min_size=1,
                max_size=4))
def test_go_duration_sums_parts(parts: list[tuple[int, str]]) -> None:
    text = "".join(f"{n}{unit}" for n, unit in parts)
    assert go_duration(text) == sum(n * _units[unit] for n, unit in parts)
