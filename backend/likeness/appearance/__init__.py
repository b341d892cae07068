"""How the head looks: light and delighting, rasterisation, the UV bake of colour textures, the smooth skin
fill, hair masks, surface maps, previews, relighting and PNG encoding.
"""
