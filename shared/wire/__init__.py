"""The wire contract: the records that cross topics, the topics themselves, the tokens
Postline puts in addresses and links (VERP, unsubscribe, tracking), and the events' published
JSON (``eventjson``, ``eventkinds``, ``eventschema``). Everything here is versioned with the
care rolling upgrades need; nothing here talks to the bus or runs a loop."""
