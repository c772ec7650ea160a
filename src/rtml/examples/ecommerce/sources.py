"""The clickstream: the public e-commerce data set's columns plus event_id."""

from rtml import Source

events = Source(
    name="events",
    schema="schemas/event.schema.json",
    timestamp_field="event_time",
    id_field="event_id",
    rules=["price >= 0"],
    allowed_lateness="5m",
    description="view / cart / remove_from_cart / purchase events of an online store",
)
