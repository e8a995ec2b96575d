"""The resources every stage shares, one module each, with its local and production implementations.

`profiles.build_resources(settings)` is the one place that picks an implementation per profile.
"""
