"""Reusable building blocks of The Better Store: four components and the small pieces they share."""
