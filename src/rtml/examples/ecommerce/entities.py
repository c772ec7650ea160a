"""Who and what the features describe."""

from rtml import Entity

user = Entity(name="user", join_keys=["user_id"], description="A shopper")
product = Entity(name="product", join_keys=["product_id"], description="A catalogue item")
