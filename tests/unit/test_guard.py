import pytest

from gitops.guard import check_deletions

CURRENT = [f"ConfigMap/ns/c{i}" for i in range(10)]


@pytest.mark.parametrize("desired,limit,allow,allowed,deleted", [
    (CURRENT, 50, False, True, 0),
    (CURRENT[:5], 50, False, True, 5),          # exactly the limit is allowed
    (CURRENT[:4], 50, False, False, 6),
    ([], 50, False, False, 10),                  # the folder emptied
    ([], 50, True, True, 10),                    # ... unless the stack allows it
    (CURRENT[:9], 0, False, False, 1),
    ([], 100, False, True, 10),
    (["ConfigMap/ns/new"], 50, False, False, 10),  # renamed folder: everything old goes
])
def test_guard_matrix(desired, limit, allow, allowed, deleted):
    verdict = check_deletions(CURRENT, desired, max_delete_percent=limit, allow_mass_delete=allow)
    assert (verdict.allowed, len(verdict.deleted)) == (allowed, deleted)


def test_message_says_how_many_and_which_share():
    verdict = check_deletions(CURRENT, CURRENT[:2], max_delete_percent=50)
    assert not verdict.allowed
    assert "8 of 10 objects (80%)" in verdict.message
    assert "gitops:maxDeletePercent 50%" in verdict.message and "gitops:allowMassDelete" in verdict.message
    assert "ConfigMap/ns/c2" in verdict.message


def test_empty_stack_never_refuses():
    assert check_deletions([], [], max_delete_percent=0).allowed
