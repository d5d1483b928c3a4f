"""Every exception has its home in an ``exceptions`` module, and the tree in whnode/errors.py
and docs/errors.md is the one the classes draw (generated, never edited by hand)."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

import whnode.errors
from whnode.exceptions import (
    TREE_END,
    TREE_START,
    WhnodeError,
    exception_tree,
    render_errors_markdown,
)
from whnode.upstream.exceptions import AdapterParseError, UpstreamError, UpstreamParseError

ROOT = Path(__file__).resolve().parents[1]
REGENERATE = "regenerate with: .venv/bin/python -c 'import whnode.exceptions as e; e.write_tree()'"


def _all_subclasses(cls: type[BaseException]) -> set[type[BaseException]]:
    found: set[type[BaseException]] = set()
    for sub in cls.__subclasses__():
        found |= {sub, *_all_subclasses(sub)}
    return found


def test_the_generated_trees_are_up_to_date() -> None:
    tree = exception_tree()
    doc = whnode.errors.__doc__ or ""
    block = doc[doc.index(TREE_START) : doc.index(TREE_END)]
    assert [line[4:] for line in block.splitlines()[4:] if line.strip()] == tree, REGENERATE
    markdown = (ROOT / "docs" / "errors.md").read_text(encoding="utf-8")
    assert markdown == render_errors_markdown(exception_tree(summaries=True)), REGENERATE


def test_every_exception_is_defined_in_an_exceptions_module() -> None:
    exception_tree()  # imports every module
    homeless = sorted(
        f"{cls.__module__}.{cls.__name__}"
        for cls in _all_subclasses(WhnodeError)
        if cls.__module__.startswith("whnode") and cls.__module__.rpartition(".")[2] != "exceptions"
    )
    assert homeless == []


def test_the_tree_names_the_classes_missing_from_the_old_hand_written_one() -> None:
    names = {line.split("── ")[-1].split()[0] for line in exception_tree()}
    for name in (
        "ServiceError",
        "RequestRefused",
        "NodeNotReady",
        "PeerProblem",
        "NodeError",
        "IdentityError",
        "DemoError",
    ):
        assert name in names
    lines = exception_tree()
    upstream = next(i for i, line in enumerate(lines) if "UpstreamError " in line)
    adapter = next(i for i, line in enumerate(lines) if "AdapterParseError " in line)
    assert adapter > upstream
    assert lines[adapter].index("AdapterParseError") > lines[upstream].index("UpstreamError")


def test_an_adapter_parse_error_is_an_upstream_error_that_the_pool_names() -> None:
    from whnode.upstream.pool import run_parser

    error = AdapterParseError("treez page 2 has no data.product_list")
    assert isinstance(error, UpstreamParseError)
    assert isinstance(error, ValueError)
    assert str(error) == "treez page 2 has no data.product_list"
    copy = pickle.loads(pickle.dumps(error))  # it crosses from a parse worker
    assert (type(copy), str(copy)) == (AdapterParseError, str(error))

    def broken(dispensary_id: str, pages: list[bytes], now_ms: int) -> object:
        raise AdapterParseError("treez page 2 has no data.product_list")

    with pytest.raises(UpstreamParseError) as caught:
        run_parser(broken, "treez", "treez:shop", [b"{}"], 0)  # type: ignore[arg-type]
    assert type(caught.value) is UpstreamParseError
    assert isinstance(caught.value, UpstreamError)
    assert str(caught.value).startswith("treez treez:shop: cannot parse the pages:")
