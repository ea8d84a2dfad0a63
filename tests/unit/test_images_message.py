"""The write-back commit message: subject, body lines and user templates."""
import pytest

from gitops.errors import SettingsError
from gitops.images.message import ImageUpdate, commit_message
from gitops.settings import check_template

WEB = "127.0.0.1:5000/demo/web"
API = "127.0.0.1:5000/demo/api"


@pytest.mark.parametrize(("updates", "expected"), [
    pytest.param([(WEB, "1.2.3", "1.2.4", ["apps/deploy.yaml"])],
                 f"Update image {WEB} to 1.2.4\n\n- {WEB}: 1.2.3 -> 1.2.4 (apps/deploy.yaml)", id="one image"),
    pytest.param([ImageUpdate(WEB, "1.2.3", "1.2.4", ("b.yaml", "a.yaml", "a.yaml"))],
                 f"Update image {WEB} to 1.2.4\n\n- {WEB}: 1.2.3 -> 1.2.4 (a.yaml, b.yaml)", id="paths sorted, once"),
    pytest.param([(WEB, "1.2.3", "1.2.4", ["a.yaml"]), (WEB, "1.2.2", "1.2.4", ["b.yaml"])],
                 f"Update image {WEB} to 1.2.4\n\n- {WEB}: 1.2.2 -> 1.2.4 (b.yaml)\n- {WEB}: 1.2.3 -> 1.2.4 (a.yaml)",
                 id="one image from two old tags"),
    pytest.param([(WEB, "1.2.3", "1.2.4", ["a.yaml"]), (API, "2.0.0", "2.0.1", ["b.yaml"])],
                 f"Update images: api 2.0.1, web 1.2.4\n\n- {API}: 2.0.0 -> 2.0.1 (b.yaml)\n"
                 f"- {WEB}: 1.2.3 -> 1.2.4 (a.yaml)", id="two images, sorted"),
    pytest.param([("a.io/team1/web", "1", "2", ["x.yaml"]), ("b.io/team2/web", "3", "4", ["y.yaml"]),
                  ("b.io/team2/db", "5", "6", [])],
                 "Update images: a.io/team1/web 2, db 6, b.io/team2/web 4\n\n- a.io/team1/web: 1 -> 2 (x.yaml)\n"
                 "- b.io/team2/db: 5 -> 6\n- b.io/team2/web: 3 -> 4 (y.yaml)",
                 id="clashing short names spelled out, no paths no parentheses"),
    pytest.param([(WEB, "", "1.0.0", ["a.yaml"])],
                 f"Update image {WEB} to 1.0.0\n\n- {WEB}: set to 1.0.0 (a.yaml)", id="no old tag"),
    pytest.param([(WEB, "1", "2", ["a.yaml"]), (WEB, "1", "2", ["a.yaml"])],
                 f"Update image {WEB} to 2\n\n- {WEB}: 1 -> 2 (a.yaml)", id="duplicates once"),
])
def test_default_message(updates, expected):
    assert commit_message(updates) == expected
    assert commit_message(list(reversed(updates))) == expected  # independent of scan order


@pytest.mark.parametrize(("template", "expected"), [
    ("chore(images): {summary}\n\n{images}\n\nSigned-off-by: bot",
     f"chore(images): Update image {WEB} to 1.2.4\n\n- {WEB}: 1.2.3 -> 1.2.4 (a.yaml)\n\nSigned-off-by: bot"),
    ("{summary}", f"Update image {WEB} to 1.2.4"),
    ("deploy {{prod}}\n{images}", f"deploy {{prod}}\n- {WEB}: 1.2.3 -> 1.2.4 (a.yaml)"),
    ("\n\n{summary}   \n\n\n", f"Update image {WEB} to 1.2.4"),
])
def test_template(template, expected):
    check_template(template)
    assert commit_message([(WEB, "1.2.3", "1.2.4", ["a.yaml"])], template) == expected


@pytest.mark.parametrize(("template", "match"), [
    ("{summary} by {author}", r"unknown placeholder \{author\}; use \{summary\}, \{images\}"),
    ("{0}", r"unknown placeholder \{0\}"),
    ("{}", r"unknown placeholder \{\} \(positional\)"),
    ("{summary.__class__}", r"unknown placeholder \{summary.__class__\}"),
    ("{images[0]}", r"unknown placeholder \{images\[0\]\}"),
    ("{summary", "malformed"),
    ("summary}", "malformed"),
    ("{summary:d}", "cannot be rendered"),
])
def test_bad_template_is_a_settings_error(template, match):
    with pytest.raises(SettingsError, match=match):
        check_template(template)
    with pytest.raises(SettingsError, match=match):
        commit_message([(WEB, "1", "2", [])], template)


def test_template_that_renders_empty_is_refused():
    check_template("")  # only placeholders are checked up front
    with pytest.raises(SettingsError, match="empty message"):
        commit_message([(WEB, "1", "2", [])], "  \n")


def test_no_updates_is_a_caller_bug():
    with pytest.raises(ValueError):
        commit_message([])
