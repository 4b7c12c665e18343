"""Request patterns (``METHOD PATH-GLOB``), shared by rate-limit rules and app policies."""

from __future__ import annotations

import pytest

from proxy.matching import PatternList, RequestPattern


@pytest.mark.parametrize(
    ("pattern", "method", "path", "matches"),
    [
        ("GET /public/v1/documents", "GET", "/public/v1/documents", True),
        ("GET /public/v1/documents", "POST", "/public/v1/documents", False),
        ("GET /public/v1/documents", "GET", "/public/v1/documents/abc", False),
        ("* /public/v1/documents", "DELETE", "/public/v1/documents", True),
        ("POST /public/v1/documents/*/send", "POST", "/public/v1/documents/abc/send", True),
        ("POST /public/v1/documents/*/send", "POST", "/public/v1/documents//send", False),
        ("POST /public/v1/documents/*/send", "POST", "/public/v1/documents/a/b/send", False),
        ("GET /public/v1/documents/*", "GET", "/public/v1/documents/abc", True),
        ("GET /public/v1/documents/*", "GET", "/public/v1/documents/abc/details", False),
        ("GET /public/v1/documents/**", "GET", "/public/v1/documents", True),
        ("GET /public/v1/documents/**", "GET", "/public/v1/documents/abc/details", True),
        ("GET /public/v1/documents/**", "GET", "/public/v1/documentsX", False),
        ("GET /**", "GET", "/anything/at/all", True),
        ("get /public/v1/templates", "GET", "/public/v1/templates", True),
        ("GET /public/v1/a.b", "GET", "/public/v1/aXb", False),
    ],
)
def test_a_pattern_matches_the_method_and_a_glob_of_whole_segments(
    pattern: str, method: str, path: str, matches: bool
) -> None:
    assert RequestPattern.parse(pattern).matches(method, path) is matches


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("/public/v1/documents", "not METHOD PATH"),
        ("GET", "not METHOD PATH"),
        ("FETCH /public/v1/documents", "not an HTTP method"),
        ("GET public/v1/documents", "must start with '/'"),
        ("GET /public/v1/doc*", "whole segments only"),
        ("GET /public/v1/<script>", "not a path segment"),
    ],
)
def test_a_malformed_pattern_is_refused_saying_what_is_wrong(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        RequestPattern.parse(text)


def test_a_list_answers_the_first_pattern_that_matches_in_order() -> None:
    patterns = PatternList(
        [
            RequestPattern.parse("POST /public/v1/documents/*/send"),
            RequestPattern.parse("* /public/v1/documents/**"),
            RequestPattern.parse("GET /public/v1/documents/*"),
        ]
    )
    assert patterns.first("POST", "/public/v1/documents/abc/send") == 0
    assert patterns.first("GET", "/public/v1/documents/abc") == 1  # Before the third.
    assert patterns.first("GET", "/public/v1/templates") is None
    assert PatternList([]).first("GET", "/") is None
