"""The generated KafkaTopics and dashboards match their sources (shared/wire/topics.py)."""

from __future__ import annotations

import gen_dashboards
import gen_topics
import yaml

from shared.wire.topics import all_topics


def test_committed_topics_match_shared_topics() -> None:
    docs = list(yaml.safe_load_all(gen_topics.TOPICS_FILE.read_text()))
    by_name = {doc["spec"]["topicName"]: doc["spec"] for doc in docs}
    assert set(by_name) == {topic.name for topic in all_topics()}
    for topic in all_topics():
        spec = by_name[topic.name]
        assert spec["partitions"] == topic.partitions
        assert spec["config"] == topic.config
        assert spec["config"]["max.message.bytes"] == str(topic.max_message_bytes)


def test_generated_files_are_up_to_date() -> None:
    assert gen_topics.main(["--check"]) == 0
    assert gen_dashboards.main(["--check"]) == 0


def test_resource_names_are_dns_labels() -> None:
    assert gen_topics.resource_name("postline.retry.1m") == "postline-retry-1m"
