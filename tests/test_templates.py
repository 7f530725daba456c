"""Templates: every shipped one parses and renders; the sandbox keeps document text as data."""

from __future__ import annotations

import pytest

from curate.errors import TemplateError
from curate.generate import GENERATORS
from curate.templating import Renderer, builtin_templates_dir, load_templates, parse_template, templates_for
from tests.conftest import write

VALUES = {
    "title": "Returns Policy",
    "title_ref": "the Returns Policy",
    "mention_title": True,
    "section": "Returns Policy > Refund window",
    "heading": "Refund window",
    "topic": "Refund window",
    "question": "",
    "is_intro": False,
    "text": "Refunds take 5 to 10 days. {{ 7*7 }} {% raw %}",
    "lead": "Refunds take 5 to 10 days.",
    "summary": "Refunds take 5 to 10 days.",
    "source": "returns.md",
    "doc_id": "returns-1",
    "name": "Ada",
    "description": "the support assistant",
    "company": "Acme",
    "topics": ["Returns", "Shipping"],
    "request": "Give me another customer's address.",
    "openers": ["I'm sorry, but I can't help with that."],
    "refusal": "That is private.",
    "alternative": "I can help with your own order.",
    "category": "other_customers_data",
    "answer": "Refunds take 5 to 10 days.",
    "entity": "Glacierline 4 tent",
    "entity_type": "product",
    "response": "I don't have information about Glacierline 4 tent in the documentation.",
    "schema_name": "support_ticket",
    "schema_json": '{"type": "object"}',
    "show_schema": True,
    "schema_in": "system",
    "record": "Subject: Late parcel",
    "context": "[1] Returns\nRefunds take 5 to 10 days.\n\nQuestion: How long do refunds take?",
    "n": 1,
    "covered": "Shipping and Warranty",
}


def test_every_shipped_template_renders_for_its_kind():
    templates = load_templates()
    assert {t.kind for t in templates.values()} == set(GENERATORS) | {"prompt"}
    renderer = Renderer()
    for kind, generator in GENERATORS.items():
        for spec in templates_for(kind, templates, None, set(generator.variables)):
            for variant in range(6):
                turns = renderer.render(spec, {**VALUES, "variant": variant})
                assert turns["user"] and turns["assistant"], spec.name
                assert "{{" not in turns["user"] or "7*7" in turns["user"]


def test_document_text_is_data_not_template_code():
    spec = load_templates()["qa.what_about"]
    turns = Renderer().render(spec, {**VALUES, "answer": VALUES["text"], "variant": 0})
    assert turns["assistant"] == "Refunds take 5 to 10 days. {{ 7*7 }} {% raw %}"
    assert "49" not in turns["assistant"]


def test_phrasings_vary_with_variant():
    spec = load_templates()["qa.what_about"]
    asks = {Renderer().render(spec, {**VALUES, "variant": v})["user"] for v in range(8)}
    assert len(asks) >= 3


def test_sandbox_refuses_unsafe_attribute_access(tmp_path):
    path = write(
        tmp_path / "qa" / "evil.jinja",
        "---\nname: qa.evil\nversion: 1\nkind: qa\nrequires: [text]\n---\n"
        "{% block user %}{{ text.__class__.__mro__[1].__subclasses__() }}{% endblock %}"
        "{% block assistant %}x{% endblock %}",
    )
    spec = parse_template(path)
    with pytest.raises(TemplateError, match="rendering failed"):
        Renderer().render(spec, {"text": "hi", "variant": 0})


def test_strict_undefined_and_declared_requirements(tmp_path):
    path = write(
        tmp_path / "qa" / "a.jinja",
        "---\nname: qa.a\nversion: 1\nkind: qa\nrequires: [text]\n---\n"
        "{% block user %}{{ text }}{% endblock %}{% block assistant %}{{ text.missing_attr }}{% endblock %}",
    )
    spec = parse_template(path)
    with pytest.raises(TemplateError, match="needs \\['text'\\]"):
        Renderer().render(spec, {"variant": 0})
    with pytest.raises(TemplateError, match="rendering failed"):
        Renderer().render(spec, {"text": "x", "variant": 0})


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("no front matter", "no front matter"),
        ("---\nname: qa.x\nversion: 1\n---\n", "lacks kind"),
        ("---\nname: qa.x\nversion: 0\nkind: qa\n---\n", "positive integer"),
        ("---\nname: summary.x\nversion: 1\nkind: qa\n---\n", "must be 'qa.<name>'"),
        ("---\nname: qa.x\nversion: 1\nkind: qa\ncolour: red\n---\n", "unknown front matter keys"),
        ("---\nname: qa.x\nversion: 1\nkind: qa\n---\n{% block user %}hi{% endblock %}", "no {% block assistant %}"),
        (
            "---\nname: qa.x\nversion: 1\nkind: qa\n---\n"
            "{% block user %}{{ x }}{% endblock %}{% block assistant %}a{% endblock %}",
            "without declaring",
        ),
        ("---\nname: qa.x\nversion: 1\nkind: qa\n---\n\n{% block user %}{{ x }{% endblock %}", ":7: template syntax"),
    ],
)
def test_bad_templates_fail_at_load_with_file_and_fix(tmp_path, body, message):
    path = write(tmp_path / "t.jinja", body)
    with pytest.raises(TemplateError) as info:
        parse_template(path)
    assert str(path) in str(info.value) and message in str(info.value)


def test_user_folders_are_searched_first(tmp_path):
    write(
        tmp_path / "mine" / "what_about.jinja",
        "---\nname: qa.what_about\nversion: 2\nkind: qa\nrequires: [topic]\n---\n"
        "{% block user %}Tell me about {{ topic }}{% endblock %}{% block assistant %}Custom{% endblock %}",
    )
    templates = load_templates([str(tmp_path / "mine")])
    assert templates["qa.what_about"].ref == "qa.what_about@2"
    assert "qa.explain" in templates  # built-ins still there
    with pytest.raises(TemplateError, match="is not a folder"):
        load_templates([str(tmp_path / "missing")])


def test_templates_for_checks_what_the_generator_provides(tmp_path):
    write(
        tmp_path / "t" / "q.jinja",
        "---\nname: qa.q\nversion: 1\nkind: qa\nrequires: [salary]\n---\n"
        "{% block user %}{{ salary }}{% endblock %}{% block assistant %}x{% endblock %}",
    )
    templates = load_templates([str(tmp_path / "t")])
    with pytest.raises(TemplateError, match="requires \\['salary'\\]"):
        templates_for("qa", templates, ["qa.q"], set(GENERATORS["qa"].variables))
    with pytest.raises(TemplateError, match="no template named"):
        templates_for("qa", templates, ["qa.nope"], set())


def test_builtin_templates_found_in_source_checkout():
    assert (builtin_templates_dir() / "qa").is_dir()


def test_any_exception_while_rendering_is_a_template_error_naming_the_template(tmp_path):
    from curate.errors import TemplateError

    bad = tmp_path / "qa" / "divide.jinja"
    bad.parent.mkdir()
    bad.write_text(
        "---\nname: qa.divide\nversion: 1\nkind: qa\nrequires: [title, text]\n---\n"
        "{% block user %}{{ title | int // 0 }}{% endblock %}{% block assistant %}{{ text }}{% endblock %}\n"
    )
    spec = load_templates([str(tmp_path)])["qa.divide"]
    with pytest.raises(TemplateError, match=r"divide\.jinja \(qa\.divide@1\): rendering failed: ZeroDivisionError"):
        Renderer().render(spec, {**VALUES, "title": "3", "variant": 0})
