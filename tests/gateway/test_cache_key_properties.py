"""Hypothesis properties of the gateway's cache keys (issue 7, fuzzing: "cache keys").

The hand-worked cases live in test_units.py; these check the same promises over many
generated requests: a key is a pure function of (kind, versions, parameters), blind to the
order of parameters and of filter values and to unset (None) parameters, and different for
any change of a version or of a parameter's value.
"""

from __future__ import annotations

import string

from hypothesis import given, settings
from hypothesis import strategies as st

from services.gateway.cache import cache_key
from shared.contract.schemas import FILTER_COLUMNS

# Model versions are plain folder names (the CLI refuses anything else).
version = st.text(alphabet=string.ascii_letters + string.digits + "._-", min_size=1, max_size=20)
versions = st.fixed_dictionaries({"candidate": version, "ranker": version, "catalogue": version})
filter_values = st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=4, unique=True)
filters = st.dictionaries(st.sampled_from(FILTER_COLUMNS), filter_values, max_size=3)
params = st.fixed_dictionaries(
    {
        "customer_id": st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
        "k": st.integers(1, 100),
        "offset": st.integers(0, 500),
        "filters": filters,
    }
)


@settings(max_examples=200, deadline=None)
@given(versions, params, st.randoms(use_true_random=False))
def test_key_ignores_order_of_parameters_and_filter_values(vs, ps, rnd):
    shuffled_filters = {}
    for column in rnd.sample(list(ps["filters"]), len(ps["filters"])):
        values = list(ps["filters"][column])
        rnd.shuffle(values)
        shuffled_filters[column] = values
    shuffled = dict(reversed(list({**ps, "filters": shuffled_filters}.items())))
    shuffled_versions = dict(reversed(list(vs.items())))
    assert cache_key("p", "rec", shuffled_versions, shuffled) == cache_key("p", "rec", vs, ps)


@settings(max_examples=200, deadline=None)
@given(versions, params)
def test_unset_parameters_are_the_same_as_absent_ones(vs, ps):
    with_none = {**ps, "filters": {**ps["filters"], "price_min": None}, "unused": None}
    assert cache_key("p", "rec", vs, with_none) == cache_key("p", "rec", vs, ps)


@settings(max_examples=200, deadline=None)
@given(versions, params, st.sampled_from(["candidate", "ranker", "catalogue"]), version)
def test_any_new_version_gives_a_new_key(vs, ps, name, new):
    changed = {**vs, name: new}
    same = changed[name] == vs[name]
    assert (cache_key("p", "rec", changed, ps) == cache_key("p", "rec", vs, ps)) == same
    # Versions stay readable in the key (redis-cli --scan shows what a model change invalidates).
    assert f"{name}={new}" in cache_key("p", "rec", changed, ps)


@settings(max_examples=200, deadline=None)
@given(versions, params, params)
def test_different_requests_never_share_a_key(vs, a, b):
    def canonical(p: dict) -> tuple:
        return (p["customer_id"], p["k"], p["offset"], sorted((c, tuple(sorted(v))) for c, v in p["filters"].items()))

    same_request = canonical(a) == canonical(b)
    assert (cache_key("p", "rec", vs, a) == cache_key("p", "rec", vs, b)) == same_request
    assert cache_key("p", "rec", vs, a) != cache_key("p", "search-text", vs, a)
    assert cache_key("p", "rec", vs, a).startswith("p:rec:")
