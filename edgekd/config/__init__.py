"""Recipe sections, one pydantic model per concern. `edgekd.recipe` composes them."""
