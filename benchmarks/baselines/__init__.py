"""Servers that visionserve is measured against, written the way people usually write them."""
