"""Recipes: end-to-end jobs built on everything below them (the embedded bundle's training and measurement)."""
