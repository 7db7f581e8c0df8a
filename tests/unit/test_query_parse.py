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


# --- the query language: filters, phrases, cutoff -----------------------------------------


def test_filters_and_phrases_come_out_of_the_text():
    from clipsearch.query.parse import split_query

    parts = split_query('beach near:"New York" after:2023-06 "project plan" camera:pixel')
    assert parts.free == "beach project plan"
    assert parts.filters == (("near", "New York"), ("after", "2023-06"), ("camera", "pixel"))
    assert parts.phrases == ("project plan",)
    text = 'beach near:"New York" after:2023-06 "project plan" camera:pixel'
    assert [text[a:b] for a, b in parts.spans] == [
        'near:"New York"',
        "after:2023-06",
        "camera:pixel",
    ]


@pytest.mark.parametrize(
    ("text", "position", "words"),
    [
        ("dog colour:red", 5, "unknown filter 'colour'"),
        ('dog text:"invoice', 10, "unclosed quote"),
        ('dog "plan', 5, "unclosed quote"),
        ('dog near:""', 5, "empty near:"),
    ],
)
def test_a_bad_filter_names_its_position(text, position, words):
    from clipsearch.query.parse import split_query

    with pytest.raises(QueryError) as err:
        split_query(text)
    assert err.value.position == position and words in err.value.message
    assert err.value.hint


def test_words_with_colons_that_are_not_filters_stay_words():
    from clipsearch.query.parse import split_query

    assert split_query("2:dog + ./pool.jpg").free == "2:dog + ./pool.jpg"
    assert split_query("ratio 16:9 note: milk").free == "ratio 16:9 note: milk"
    assert split_query("https://example.org/a.jpg").filters == ()


def test_near_understands_places_countries_and_coordinates():
    from clipsearch.query.parse import resolve_near

    lisbon = resolve_near("Lisbon")
    assert "Portugal" in lisbon.label and abs(lisbon.lat - 38.72) < 0.1 and lisbon.radius_km
    assert resolve_near("Portugal").country_code == "PT"
    circle = resolve_near("38.72,-9.14~5km")
    assert (circle.lat, circle.lon, circle.radius_km) == (38.72, -9.14, 5.0)
    assert resolve_near("38.72,-9.14~500m").radius_km == 0.5
    with pytest.raises(QueryError, match="latitude"):
        resolve_near("138.7,-9.1")


def test_auto_cutoff_rule():
    from clipsearch.query.search import auto_cutoff

    # a clear edge after the fourth result
    assert auto_cutoff([0.9, 0.89, 0.88, 0.87, 0.5, 0.49, 0.48, 0.47, 0.46]) == 4
    # an even slope: no edge, nothing is cut
    assert auto_cutoff([0.9 - 0.01 * i for i in range(20)]) == 20
    assert auto_cutoff([0.5, 0.1]) == 2 and auto_cutoff([]) == 0
