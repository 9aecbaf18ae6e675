"""One-off studies run by hand (oracle bounds, baselines, int8, variant costs).

Nothing in the library imports them.
"""
