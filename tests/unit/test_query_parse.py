import pytest

from clipsearch.errors import QueryError
from clipsearch.query.build import build_terms
from clipsearch.query.parse import Query, Term, parse_expression
from tests.helpers import make_image


def test_plain_text():
    assert parse_expression("a dog on a beach") == [Term("text", "a dog on a beach", 1.0)]


def test_rclip_expression_with_weights_images_and_negatives(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_image(tmp_path / "pool.jpg")
    terms = parse_expression("2:dog + ./pool.jpg - fruit")
    assert terms == [
        Term("text", "dog", 2.0),
        Term("image", str(tmp_path / "pool.jpg"), 1.0),
        Term("text", "fruit", -1.0),
    ]


def test_hyphenated_words_are_not_operators():
    assert parse_expression("t-shirt - red") == [Term("text", "t-shirt"), Term("text", "red", -1)]


def test_missing_image_path_is_an_error(tmp_path):
    with pytest.raises(QueryError, match="query image not found"):
        parse_expression(f"{tmp_path}/missing.jpg")


def test_urls_are_refused_clearly():
    with pytest.raises(QueryError, match="URL queries are not supported"):
        parse_expression("https://example.com/cat.jpg")


def test_build_terms_combines_flags(tmp_path):
    img = make_image(tmp_path / "s.jpg")
    terms = build_terms("beach", images=[img], negatives=["people"], like=[7])
    kinds = [(t.kind, t.weight) for t in terms]
    assert kinds == [("text", 1.0), ("image", 1.0), ("text", -1.0), ("id", 1.0)]


def test_empty_query_and_bad_k():
    with pytest.raises(QueryError, match="empty query"):
        Query(())
    with pytest.raises(QueryError, match="at least 1"):
        Query((Term("text", "x"),), k=0)
