"""The API docs group operations by resource (#21 item 12, #22 item 6), not under one heading."""

import pytest
from drf_spectacular.generators import SchemaGenerator

from config.openapi import RESOURCE_TAGS


def test_every_operation_sits_under_its_resource():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    names = [tag for _pattern, tag, _about in RESOURCE_TAGS]
    assert [t["name"] for t in schema["tags"]] == names
    assert all(t["description"] for t in schema["tags"])
    tags_of = {
        (path, method): operation["tags"]
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
    }
    untagged = {op: tags for op, tags in tags_of.items() if len(tags) != 1 or tags[0] not in names}
    assert untagged == {}
    assert tags_of[("/api/v1/gifts/send/", "post")] == ["gifts"]
    assert tags_of[("/api/v1/recharges/", "post")] == ["recharges"]
    assert tags_of[("/api/v1/creators/{handle}/live/{live_id}/pinned/", "get")] == ["live"]
    assert tags_of[("/api/v1/creators/me/tiers/", "post")] == ["memberships"]
    assert tags_of[("/api/v1/creators/me/earnings/", "get")] == ["creators"]
    # Every resource has at least one operation.
    assert {tags[0] for tags in tags_of.values()} == set(names)


@pytest.mark.django_db
def test_the_docs_page_and_schema_answer(client):
    assert client.get("/api/docs/").status_code == 200
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200
    assert (
        '"name": "payouts"' in schema.content.decode() or "name: payouts" in schema.content.decode()
    )
