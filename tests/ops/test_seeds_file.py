"""The seeds list format: what parses, what is refused, and with which line number."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from whnode.errors import ConfigError
from whnode.seeds import (
    MAX_SEEDS,
    MAX_SEEDS_FILE_BYTES,
    Seed,
    format_seed,
    load_seeds,
    parse_seed_address,
    parse_seeds,
)

REPO = Path(__file__).resolve().parents[2]
PIN = "5f1c0a2e9b7d4c3a1f0e9d8c7b6a5f4e3d2c1b0a"


def test_parses_addresses_pins_comments_and_blank_lines() -> None:
    text = (
        "\ufeff# whnode seeds\n"
        "\n"
        "seed1.Example.org:8468\n"
        f"  203.0.113.7:8468   {PIN.upper()}   # pinned\n"
        "[2001:DB8::7]:9000# trailing comment without a space\n"
        "\t127.0.0.1:1\r\n"
    )
    seeds = parse_seeds(text, source="seeds.txt")
    assert [(s.host, s.port, s.line) for s in seeds] == [
        ("seed1.example.org", 8468, 3),
        ("203.0.113.7", 8468, 4),
        ("2001:db8::7", 9000, 5),
        ("127.0.0.1", 1, 6),
    ]
    assert seeds[1].node_id == bytes.fromhex(PIN)
    assert [s.node_id for s in seeds if s is not seeds[1]] == [None, None, None]
    assert seeds[0].address == ("seed1.example.org", 8468)
    assert str(seeds[2]) == "[2001:db8::7]:9000"
    assert str(seeds[1]) == f"203.0.113.7:8468 {PIN}"


def test_empty_and_comment_only_lists_are_empty() -> None:
    assert parse_seeds("") == []
    assert parse_seeds("# nothing yet\n\n   \n# still nothing") == []


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("seed.example.org", "expected HOST:PORT"),
        (":8468", "expected HOST:PORT"),
        ("seed.example.org:", "port '' is not a number"),
        ("seed.example.org:84x", "port '84x' is not a number"),
        ("seed.example.org:0", "port 0 is not in 1..65535"),
        ("seed.example.org:65536", "port 65536 is not in 1..65535"),
        ("seed.example.org:+80", "not a number"),
        ("seed.example.org:８０", "not a number"),
        ("2001:db8::7:8468", "write an IPv6 address in brackets"),
        ("[2001:db8::7]8468", r"expected \[IPv6\]:PORT"),
        ("[not-v6]:8468", "is not an IPv6 address"),
        ("bad_host:8468", "is not an IP address or a host name"),
        ("-bad.example:8468", "is not an IP address or a host name"),
        ("1.2.3.999:8468", "is not an IP address or a host name"),
        (f"{'a' * 64}.example:8468", "is not an IP address or a host name"),
        ("a.example:8468 abc", "is not 40 hex digits"),
        (f"a.example:8468 {PIN}00", "is not 40 hex digits"),
        (f"a.example:8468 {PIN[:-1]}g", "is not 40 hex digits"),
        (f"a.example:8468 {PIN} extra", "found 3 fields"),
    ],
)
def test_bad_lines_are_refused_with_file_and_line(line: str, reason: str) -> None:
    text = f"# header\nok.example:8468\n\n{line}\nlater.example:8468\n"
    with pytest.raises(ConfigError, match=rf"^seeds\.txt:4: .*{reason}"):
        parse_seeds(text, source="seeds.txt")


def test_duplicate_addresses_name_the_first_line() -> None:
    text = f"a.example:8468\n\n[::1]:9\nA.EXAMPLE:8468 {PIN}\n"
    with pytest.raises(ConfigError, match=r"^s:4: a\.example:8468 is already listed on line 1$"):
        parse_seeds(text, source="s")
    with pytest.raises(ConfigError, match=r"^s:2: \[::1\]:9 is already listed on line 1$"):
        parse_seeds("[::1]:9\n[0:0::1]:9\n", source="s")


def test_caps_on_count_and_size() -> None:
    many = "".join(f"10.0.{i // 250}.{i % 250 + 1}:8468\n" for i in range(MAX_SEEDS))
    assert len(parse_seeds(many)) == MAX_SEEDS
    with pytest.raises(ConfigError, match=rf":{MAX_SEEDS + 1}: more than {MAX_SEEDS} seeds"):
        parse_seeds(many + "one.more.example:8468\n")
    with pytest.raises(ConfigError, match="larger than"):
        parse_seeds("#" * (MAX_SEEDS_FILE_BYTES + 1))


def test_load_seeds_reads_files_and_reports_problems(tmp_path: Path) -> None:
    good = tmp_path / "seeds.txt"
    good.write_text(f"a.example:8468\n10.1.2.3:9000 {PIN}\n", encoding="utf-8")
    assert load_seeds(good) == [
        Seed("a.example", 8468),
        Seed("10.1.2.3", 9000, bytes.fromhex(PIN)),  # type: ignore[arg-type]
    ]
    with pytest.raises(ConfigError, match=re.escape(f"{tmp_path / 'missing.txt'}: cannot read")):
        load_seeds(tmp_path / "missing.txt")
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"a.example:8468\n\xff\xfe:1\n")
    with pytest.raises(ConfigError, match=re.escape(f"{binary}:2: not UTF-8 text")):
        load_seeds(binary)
    broken = tmp_path / "broken.txt"
    broken.write_text("a.example:8468\nb.example\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=re.escape(f"{broken}:2: ")):
        load_seeds(broken)
    huge = tmp_path / "huge.txt"
    huge.write_bytes(b"#" * (MAX_SEEDS_FILE_BYTES + 10))
    with pytest.raises(ConfigError, match="larger than"):
        load_seeds(huge)


def test_seed_values_validate_themselves() -> None:
    with pytest.raises(ConfigError):
        Seed("a.example", 0)
    with pytest.raises(ConfigError):
        Seed("a b", 1)
    with pytest.raises(ConfigError):
        Seed("a.example", 1, b"short")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        Seed("a.example", True)
    assert Seed("A.Example.", 1).host == "a.example"
    assert Seed("::ffff:1.2.3.4", 1).host == "::ffff:102:304"
    assert Seed("a.example", 1, line=3) == Seed("a.example", 1, line=9)
    assert parse_seed_address(" [::1]:8468 ") == ("::1", 8468)


def test_the_shipped_example_parses() -> None:
    seeds = load_seeds(REPO / "bootstrap" / "seeds.example.txt")
    assert len(seeds) >= 2
    assert any(seed.node_id is not None for seed in seeds)


hosts = st.one_of(
    st.ip_addresses().map(str),
    st.lists(
        st.from_regex(r"[a-z][a-z0-9-]{0,20}[a-z0-9]", fullmatch=True), min_size=1, max_size=4
    ).map(lambda labels: ".".join([*labels, "example"])),
)
seeds = st.builds(
    Seed,
    host=hosts,
    port=st.integers(1, 65535),
    node_id=st.one_of(st.none(), st.binary(min_size=20, max_size=20)),
)


@given(st.lists(seeds, max_size=20, unique_by=lambda seed: seed.address))
def test_format_then_parse_round_trips(listed: list[Seed]) -> None:
    text = "".join(f"{format_seed(seed)}  # seed {i}\n" for i, seed in enumerate(listed))
    parsed = parse_seeds(text)
    assert parsed == listed
    assert [seed.line for seed in parsed] == list(range(1, len(listed) + 1))


@given(st.text(max_size=200))
def test_any_text_parses_or_raises_config_error(text: str) -> None:
    message = ""
    try:
        result = parse_seeds(text)
    except ConfigError as exc:
        message = str(exc)
    if message:
        assert re.match(r"^<seeds>:\d+: ", message)
    else:
        assert all(isinstance(seed, Seed) for seed in result)
