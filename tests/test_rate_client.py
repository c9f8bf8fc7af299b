"""The Rate tab of the launched app through gradio_client: two annotators cannot see or change each other's
ratings, results are for admins only, and nothing the API returns names a method."""

from __future__ import annotations

import urllib.request

import pytest

from app.annotators import AnnotatorDirectory
from app.ratings_store import RatingStore
from tests.test_app_client import launch_app
from tests.test_rate_handlers import METHODS, PASSWORD, seed_study

TOKEN, ITEM, MESSAGE = 0, 7, 11  # positions in the Rate tab's API outputs (layout updates are not returned)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("REASONBRAIN_RATE_BATCH", "4")  # small batches: both annotators get items
        mp.setenv("REASONBRAIN_RATE_MIN_SECONDS", "0")
        with launch_app(str(tmp_path_factory.mktemp("rate-app"))) as running:
            ratings = RatingStore(running.store)
            seed_study(ratings)
            directory = AnnotatorDirectory(ratings.settings.annotators_file)
            directory.add("alice", PASSWORD, admin=True)
            directory.add("bob", PASSWORD)
            running.ratings = ratings
            yield running


def test_two_annotators_cannot_see_or_change_each_others_ratings(app):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    alice = Client(app.url, verbose=False, download_files=False)
    bob = Client(app.url, verbose=False, download_files=False)
    a = alice.predict("alice", PASSWORD, "absolute", api_name="/rate_sign_in")
    b = bob.predict("bob", PASSWORD, "absolute", api_name="/rate_sign_in")
    token_a, token_b = a[TOKEN], b[TOKEN]
    assert token_a != token_b and a[ITEM] != b[ITEM]
    assert not any(m in repr(a) + repr(b) for m in METHODS)  # blind: no method name leaves the server
    # the shown images are served (the ratings' image folder is an allowed path)
    with urllib.request.urlopen(a[5]["value"]["url"]) as r:
        assert r.status == 200

    after = alice.predict(token_a, a[ITEM], 5, 4, 3, "absolute", api_name="/rate_absolute")
    assert "Saved" in after[MESSAGE] and after[ITEM] != a[ITEM]
    mine = app.ratings.my_ratings("local:alice")
    assert len(mine) == 1 and mine[0]["ins_align"] == 5

    # bob, with his own valid token, on alice's items: not in his queue, whatever the action
    for args, api in (((token_b, after[ITEM], 1, 1, 1, "absolute"), "/rate_absolute"),
                      ((token_b, after[ITEM], "absolute"), "/rate_skip"),
                      ((token_b, after[ITEM], "spam", "absolute"), "/rate_flag")):
        with pytest.raises(AppError, match="not in your queue"):
            bob.predict(*args, api_name=api)
    # bob with alice's token would be alice: a token is a secret that only her browser holds; a forged one fails
    with pytest.raises(AppError, match="sign in"):
        bob.predict("forged" * 8, after[ITEM], 1, 1, 1, "absolute", api_name="/rate_absolute")
    assert "Nothing to undo" in bob.predict(token_b, "absolute", api_name="/rate_undo")[MESSAGE]
    with pytest.raises(AppError, match="admins"):  # results show method names: admins only
        bob.predict(token_b, True, api_name="/rate_results")
    # bob's view of the study is his own queue only
    restored = bob.predict(token_b, "absolute", api_name="/rate_restore")
    assert restored[ITEM] == b[ITEM] and "0 / " in restored[2]
    assert app.ratings.my_ratings("local:alice") == mine and app.ratings.my_ratings("local:bob") == []

    # alice undoes her rating; bob's progress is untouched, and her results view works
    undone = alice.predict(token_a, "absolute", api_name="/rate_undo")
    assert undone[ITEM] == a[ITEM] and "Undid" in undone[MESSAGE]
    assert app.ratings.my_ratings("local:alice") == []
    summary, *_ = alice.predict(token_a, True, api_name="/rate_results")
    assert "No ratings yet" in summary
    # signing out ends the token on the server
    alice.predict(token_a, "absolute", api_name="/rate_sign_out")
    with pytest.raises(AppError, match="sign in"):
        alice.predict(token_a, "absolute", api_name="/rate_show")
