"""Unit tests of the Dockerfile side of BuildKit's features (pure: no daemon): RUN's
--mount/--network/--security parsing, --chmod modes, build checks and `# check=`, the
`# syntax=` frontends served, BuildKit's vertex names."""

from __future__ import annotations

import pytest

from builder.observer import internal
from builder.solve import check_platform, check_syntax
from dockerd_py.dockerfile.checks import parse_check, run_checks
from dockerd_py.dockerfile.chmod import parse_chmod
from dockerd_py.dockerfile.errors import DockerfileError
from dockerd_py.dockerfile.parser import parse
from dockerd_py.dockerfile.runflags import parse_mount, parse_mounts
from dockerd_py.errors import InvalidParameter


def test_mount_defaults_and_fields() -> None:
    bind = parse_mount("target=/src")
    assert (bind.type, bind.readonly, bind.from_) == ("bind", True, "")
    cache = parse_mount("type=cache,target=/root/.cache/,sharing=LOCKED,uid=1000,mode=0750")
    assert (cache.readonly, cache.sharing, cache.uid, cache.mode, cache.cache_id) == \
        (False, "locked", 1000, 0o750, "/root/.cache")
    assert parse_mount("type=tmpfs,dst=/t,size=64m").size == 64 << 20
    secret = parse_mount("type=secret,id=tok,env=TOKEN,required")
    assert (secret.secret_id, secret.secret_target, secret.required) == ("tok", None, True)
    assert parse_mount("type=secret,id=a").secret_target == "/run/secrets/a"
    assert parse_mount("type=secret,target=/x/y").secret_id == "y"
    assert parse_mount("type=ssh").required is False
    rw = parse_mount("type=bind,source=a,target=/a,rw=true")
    assert rw.readonly is False
    expanded = parse_mounts("type=cache,target=$D\ntarget=/x,from=stage",
                            lambda w: w.replace("$D", "/d"))
    assert [m.target for m in expanded] == ["/d", "/x"]


@pytest.mark.parametrize("value, message", [
    ("type=volume,target=/x", 'unsupported mount type "volume"'),
    ("type=bind,target=/x,mode=0700", 'mode not allowed for "bind" type mounts'),
    ("type=cache,target=/x,sharing=sometimes", 'unsupported sharing value "sometimes"'),
    ("type=secret", "invalid secret mount. one of source, target required"),
    ("type=secret,id=a,source=b", "both source and id can't be set"),
    ("type=secret,id=a,from=x", "secret mount should not have a from"),
    ("type=tmpfs,target=/x,required", "unexpected key 'required' for mount type 'tmpfs'"),
    ("type=bind,target=/x,size=1", "unexpected key 'size' for mount type 'bind'"),
    ("type=cache,target=/x,bogus=1", "unexpected key 'bogus' in 'bogus=1'"),
    ("type=cache,target=/x,ro=maybe", "invalid value for ro: maybe"),
    ("type=cache,target=/x,uid=-1", "invalid value -1 for uid"),
    ("type=ssh,source=x", "ssh does not support source"),
    ("type=bind,target=/x,from=$STAGE", "'from' doesn't support variable expansion"),
    ("type=cache", "mount target required for cache mount"),
])
def test_mount_errors(value: str, message: str) -> None:
    with pytest.raises(DockerfileError) as e:
        parse_mount(value)
    assert message in e.value.message


def test_run_flags_at_parse_time() -> None:
    df = parse(b"FROM a\nRUN --mount=type=cache,target=/c --mount=target=/s "
               b"--network=none --security=sandbox make\n")
    run = df.stages[0].instructions[0]
    assert run.flags == {"mount": "type=cache,target=/c\ntarget=/s", "network": "none",
                         "security": "sandbox"}
    for text, message in [(b"RUN --network=bridge x", "unsupported network mode"),
                          (b"RUN --security=root x", "unsupported security mode"),
                          (b"RUN --mount=type=nope,target=/x x", 'unsupported mount type')]:
        with pytest.raises(DockerfileError) as e:
            parse(b"FROM a\n" + text + b"\n")
        assert message in e.value.message and "line 2" in e.value.message
    # a field with a variable is checked when the step runs, after expansion
    parse(b"FROM a\nRUN --mount=type=$T,target=/x true\n")


@pytest.mark.parametrize("mode, before, is_dir, after", [
    ("0755", 0o600, False, 0o755), ("u+x", 0o644, False, 0o744),
    ("u+x,g-r", 0o664, False, 0o724), ("a=r,u+w", 0o777, False, 0o644),
    ("go-rwx", 0o777, False, 0o700), ("+X", 0o644, True, 0o755), ("+X", 0o644, False, 0o644),
    ("+X", 0o744, False, 0o755), ("u=g", 0o640, False, 0o440), ("o=u", 0o750, False, 0o757),
    ("=", 0o777, False, 0o000), ("u+s", 0o755, False, 0o4755), ("+t", 0o755, True, 0o1755),
    ("ug=rw,o=", 0o777, False, 0o660), ("u-w+x", 0o644, False, 0o544),
])
def test_chmod_modes(mode: str, before: int, is_dir: bool, after: int) -> None:
    assert oct(parse_chmod(mode).apply(before, is_dir)) == oct(after)


@pytest.mark.parametrize("mode", ["8", "0o7", "07778", "u*x", "u", "", "x+"])
def test_chmod_errors(mode: str) -> None:
    with pytest.raises(DockerfileError):
        parse_chmod(mode)


def test_build_checks() -> None:
    df = parse(b"ARG API_TOKEN=x\nFROM busybox as Build\nMAINTAINER me\nENV A b\n"
               b"WORKDIR rel\nCMD echo hi\nENTRYPOINT [\"sh\"]\nCMD [\"x\"]\n"
               b"from $NOPE\nrun true\n")
    shorts = [f.short for f in run_checks(df)]
    for expected in [
        "StageNameCasing: Stage name 'Build' should be lowercase (line 2)",
        "FromAsCasing: 'as' and 'FROM' keywords' casing do not match (line 2)",
        "MaintainerDeprecated: Maintainer instruction is deprecated in favor of using label "
        "(line 3)",
        'LegacyKeyValueFormat: "ENV key=value" should be used instead of legacy "ENV key '
        'value" format (line 4)',
        'WorkdirRelativePath: Relative workdir "rel" can have unexpected results if the base '
        "image changes (line 5)",
        "JSONArgsRecommended: JSON arguments recommended for CMD to prevent unintended "
        "behavior related to OS signals (line 6)",
        "MultipleInstructionsDisallowed: Multiple CMD instructions should not be used in the "
        "same stage because only the last one will be used (line 6)",
        "UndefinedArgInFrom: FROM argument 'NOPE' is not declared (line 9)",
        "ConsistentInstructionCasing: Command 'run' should match the case of the command "
        "majority (uppercase) (line 10)",
        'SecretsUsedInArgOrEnv: Do not use ARG or ENV instructions for sensitive data (ARG '
        '"API_TOKEN") (line 1)',
    ]:
        assert expected in shorts, (expected, shorts)
    finding = next(f for f in run_checks(df) if f.rule == "JSONArgsRecommended")
    assert finding.url == "https://docs.docker.com/go/dockerfile/rule/json-args-recommended/"
    clean = parse(b"FROM busybox AS build\nWORKDIR /app\nCMD [\"true\"]\n")
    assert run_checks(clean) == []
    shell = parse(b"FROM busybox\nSHELL [\"/bin/bash\", \"-c\"]\nCMD echo hi\n")
    assert run_checks(shell) == []


def test_check_directive() -> None:
    config = parse_check("skip=JSONArgsRecommended, StageNameCasing;error=true")
    assert config.skip == {"JSONArgsRecommended", "StageNameCasing"} and config.error
    assert parse_check("skip=all").skip_all
    for bad in ("skip", "error=maybe", "nope=1"):
        with pytest.raises(DockerfileError):
            parse_check(bad)


@pytest.mark.parametrize("ref", [
    "docker/dockerfile:1", "docker/dockerfile:1.7", "docker.io/docker/dockerfile:1.4.3",
    "docker/dockerfile", "docker/dockerfile:1-labs",
    "docker/dockerfile:1@sha256:" + "a" * 64, "docker/dockerfile:1 # with a comment"])
def test_syntax_stock_frontend(ref: str) -> None:
    check_syntax(ref)


@pytest.mark.parametrize("ref", ["example.com/my/frontend:1", "tonistiigi/dockerfile:x",
                                 "docker/dockerfile:1; rm -rf"])
def test_syntax_other_frontends_refused(ref: str) -> None:
    with pytest.raises(InvalidParameter) as e:
        check_syntax(ref)
    assert "unsupported frontend" in str(e.value)


def test_platform() -> None:
    host = check_platform("linux/" + __import__("platform").machine().replace(
        "x86_64", "amd64").replace("aarch64", "arm64"))
    assert host.startswith("linux/")
    with pytest.raises(InvalidParameter) as e:
        check_platform("linux/s390x" if "s390x" not in host else "linux/amd64")
    assert "is not supported: this daemon builds only for its own platform" in str(e.value)


def test_internal_vertex_digest_is_stable() -> None:
    a = internal("[internal] load build definition from Dockerfile")
    assert a == internal("[internal] load build definition from Dockerfile")
    assert a.digest.startswith("sha256:") and a.stage == -1
